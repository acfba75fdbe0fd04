"""Which partition a record goes to: by its log_id alone, the same in every process."""

from __future__ import annotations

import json
import uuid
from collections import Counter

import pytest

from audit_logging._link import frames
from audit_logging._outbox import MAX_BATCH, MAX_BATCH_BYTES
from audit_logging.errors import ConfigurationError
from audit_logging.partitions import check_count, log_id_of, partition_index, partition_of, route
from audit_logging.record import build_record, record_to_json


def test_the_log_id_is_read_from_a_records_json_fast_or_slow() -> None:
    record = build_record({"action": "CREATE"})
    body = record_to_json(record)
    assert body.startswith(b'{"log_id":"')
    assert log_id_of(body) == record["log_id"]
    # Another writer's key order, or no log_id at all, still routes (the latter to the
    # consumer's dead letters).
    reordered = json.dumps({"action": "CREATE", "log_id": record["log_id"]}).encode()
    assert log_id_of(reordered) == record["log_id"]
    assert log_id_of(b'{"action":"CREATE"}') == ""
    assert log_id_of(b"not json") == ""
    assert log_id_of(b'{"log_id":"short"}') == "short"


def _murmur3_32(data: bytes, seed: int) -> int:
    """MurmurHash3 x86 32-bit written out from its definition, as the Java client's
    ``Utils.murmur3`` is: the check does not trust the library that computes it."""
    c1, c2, mask = 0xCC9E2D51, 0x1B873593, 0xFFFFFFFF

    def scramble(k: int) -> int:
        k = (k * c1) & mask
        k = ((k << 15) | (k >> 17)) & mask
        return (k * c2) & mask

    h = seed
    whole = len(data) // 4 * 4
    for i in range(0, whole, 4):
        h ^= scramble(int.from_bytes(data[i : i + 4], "little"))
        h = ((h << 13) | (h >> 19)) & mask
        h = (h * 5 + 0xE6546B64) & mask
    if tail := data[whole:]:
        h ^= scramble(int.from_bytes(tail, "little"))
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & mask
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & mask
    return h ^ (h >> 16)


def test_partitions_follow_murmur3_of_the_log_id_and_spread_evenly() -> None:
    # murmur3 x86 32-bit, seed 104729, of the UTF-8 key, unsigned, modulo the count: the
    # hash routing of RabbitMQ's Java and Go stream clients.
    assert _murmur3_32(b"hello", 104729) == 1321743225
    ids = [str(uuid.UUID(int=i * 7919 + 1, version=4)) for i in range(30_000)]
    for log_id in [*ids[:500], "", "é", "abc", "abcd", "abcde"]:
        for count in (1, 2, 3, 7):
            assert partition_index(log_id, count) == _murmur3_32(log_id.encode(), 104729) % count
    spread = Counter(partition_index(i, 3) for i in ids)
    assert set(spread) == {0, 1, 2}
    assert min(spread.values()) > 9_000


def test_route_keeps_each_partitions_order() -> None:
    records = [(pid, record_to_json(build_record({"action": "A"}))) for pid in range(1, 301)]
    routed = route(records, ["s-0", "s-1", "s-2"])
    assert [stream for stream, _ in routed] == ["s-0", "s-1", "s-2"]
    assert sorted(pid for _, group in routed for pid, _ in group) == list(range(1, 301))
    for stream, group in routed:
        ids = [pid for pid, _ in group]
        assert ids == sorted(ids)
        assert all(partition_index(log_id_of(b), 3) == int(stream[-1]) for _, b in group)
    assert route(records, ["single"]) == [("single", records)]


def test_partition_names_from_the_broker_must_be_safe_file_names() -> None:
    # An operator's super stream may name partitions anything RabbitMQ takes; the names go
    # into S3 keys ({prefix}year=…/{partition}-…parquet) and log lines.
    assert check_count("s", 2, ["s-0", "s.b_1"]) == ["s-0", "s.b_1"]
    for bad in ["../../other-prefix/x", "s/0", "s-0\nINFO forged", "", "x" * 256, "s 0"]:
        with pytest.raises(ConfigurationError) as caught:
            check_count("s", 2, ["s-0", bad])
        assert "RABBITMQ_STREAM_NAME" in str(caught.value)
        assert "\n" not in str(caught.value)
    with pytest.raises(ConfigurationError, match="super stream of 1 partitions"):
        check_count("s", 2, ["s-0"])


def test_the_fast_path_from_a_body_hashes_as_the_log_id_does() -> None:
    for n in range(2_000):
        body = record_to_json(build_record({"action": "A", "object_id": str(n)}))
        assert partition_of(body, 3) == partition_index(log_id_of(body), 3)
    odd = b'{"log_id":"\xc3\xa9' + b"x" * 34 + b'","action":"A"}'
    assert partition_of(odd, 7) == partition_index(log_id_of(odd), 7)


def test_frames_hold_at_most_a_frames_worth() -> None:
    records = [(i, b"x" * 10_000) for i in range(400)]
    cut = frames(records)
    assert [pid for frame in cut for pid, _ in frame] == list(range(400))
    assert all(len(frame) <= MAX_BATCH for frame in cut)
    assert all(sum(len(b) for _, b in frame) <= MAX_BATCH_BYTES for frame in cut)
    assert frames(records[:3]) == [records[:3]]
