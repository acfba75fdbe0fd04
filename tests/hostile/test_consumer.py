"""Every message body in ``messages/`` against one real consumer (RabbitMQ, OpenSearch, S3).

All of them are published to a fresh stream, interleaved with good records, and one consumer
reads them all: it must stay up, dead-letter each hostile body (with its offset and a reason),
and archive and index every good record exactly once. A file named ``*.accepted.*`` holds a
body the decoder repairs into a valid record: it must be archived once, like a good one.
"""

from __future__ import annotations

import base64
from collections import Counter
from pathlib import Path

import pytest

from audit_logging.record import record_to_json
from audit_logging.settings import Settings
from tests.consumer._helpers import make_records, publish, wait_until
from tests.consumer._sinks import archived_rows, dead_letters, opensearch_ids
from tests.consumer.conftest import StartConsumer

pytestmark = [pytest.mark.services]
MESSAGES = Path(__file__).parent / "messages"


def corpus() -> list[Path]:
    return sorted(path for path in MESSAGES.iterdir() if path.is_file())


def test_the_corpus_is_there() -> None:
    names = [path.name for path in corpus()]
    assert len(names) >= 20, names


def test_one_consumer_survives_every_hostile_message(
    settings: Settings, start_consumer: StartConsumer
) -> None:
    files = corpus()
    good = make_records(len(files) + 1)
    bodies: list[bytes] = [record_to_json(good[0])]
    hostile: dict[int, Path] = {}
    for path, record in zip(files, good[1:], strict=True):
        hostile[len(bodies)] = path
        bodies.append(path.read_bytes())
        bodies.append(record_to_json(record))
    # Bodies over 1 MiB need a larger frame than the broker's default.
    publish(settings, bodies, frame_max=8 * 1024 * 1024)

    consumer = start_consumer("--batch-size", "20", "--flush-interval", "0.5")
    accepted = {o for o, p in hostile.items() if ".accepted." in p.name}
    refused = {o: p for o, p in hostile.items() if o not in accepted}
    wait_until(
        "a dead letter for each hostile body",
        lambda: len(dead_letters(settings)),
        lambda count: count >= len(refused),
        60,
    )
    expected = {record["log_id"] for record in good}
    rows = wait_until(
        "every good record archived",
        lambda: list(archived_rows(settings)),
        lambda rows: expected <= {row["log_id"] for row in rows},
        60,
    )
    assert consumer.running(), consumer.log()
    assert consumer.stop() == 0, consumer.log()
    assert "Traceback" not in consumer.log(), consumer.log()

    letters = {entry["offset"]: entry for entry in dead_letters(settings)}
    assert sorted(letters) == sorted(refused), {
        o: p.name for o, p in refused.items() if o not in letters
    }
    for offset, path in refused.items():
        entry = letters[offset]
        assert entry["stage"] == "decode" and entry["reason"], (path.name, entry)
        if not entry["body_truncated"]:
            # The body as sent (the whole AMQP message when it has no data section: empty).
            assert path.read_bytes() in base64.b64decode(entry["body_base64"]), path.name

    counts = Counter(row["log_id"] for row in rows)
    assert len(counts) == len(expected) + len(accepted)
    assert set(counts.values()) == {1}, [i for i, n in counts.items() if n > 1]
    ids = wait_until(
        "every archived record searchable",
        lambda: Counter(opensearch_ids(settings)),
        lambda ids: set(ids) == set(counts),
        30,
    )
    assert set(ids.values()) == {1}
    for row in rows:
        # A repaired body is stored as valid Unicode, never a raw surrogate.
        assert all("\ud800" not in str(value) for value in row.values())
