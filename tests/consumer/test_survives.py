"""Issue 8, item 1: the messages that stopped the consumer (and stopped it again at every
restart under the same name, through the duplicate memory's warm-up) are dead-lettered while
it carries on, against the real RabbitMQ, OpenSearch and S3."""

from __future__ import annotations

import json

import pytest

from audit_logging.record import new_log_id, record_to_json
from audit_logging.settings import Settings
from tests.consumer._helpers import bodies_of, make_records, publish, wait_for_offset, wait_until
from tests.consumer._sinks import archived_log_ids, dead_letters, opensearch_ids
from tests.consumer.conftest import StartConsumer

pytestmark = [pytest.mark.services]


def crashers() -> dict[str, bytes]:
    base = make_records(3)
    deep = record_to_json({**base[0], "extra": "DEEP"}).replace(
        b'"DEEP"', b'{"a":' + b"[" * 1000 + b"]" * 1000 + b"}"
    )
    return {
        "nested 1,000 deep": deep,
        "log_id with a trailing newline": json.dumps(
            {**base[1], "log_id": new_log_id() + "\n"}
        ).encode(),
        "year 9999 west of UTC": json.dumps(
            {**base[2], "timestamp": "9999-12-31T23:59:59-01:00"}
        ).encode(),
    }


def test_the_messages_that_crashed_it_are_dead_lettered_also_after_a_restart(
    settings: Settings, start_consumer: StartConsumer
) -> None:
    good = make_records(4)
    bad = crashers()
    # good, bad, good, bad, good, bad, good: offsets 1, 3 and 5 are the hostile ones.
    bodies = [record_to_json(good[0])]
    for body, record in zip(bad.values(), good[1:], strict=True):
        bodies += [body, record_to_json(record)]
    publish(settings, bodies)

    args = ("--batch-size", "100", "--flush-interval", "0.5")
    consumer = start_consumer(*args)
    wait_for_offset(settings, len(bodies) - 1, timeout=60)
    assert consumer.running(), consumer.log()
    letters = dead_letters(settings)
    assert sorted(entry["offset"] for entry in letters) == [1, 3, 5], letters
    assert all(entry["stage"] == "decode" for entry in letters), letters
    assert consumer.stop() == 0, consumer.log()

    # The same name again: the warm-up reads the hostile messages once more.
    again = start_consumer(*args)
    later = make_records(2)
    publish(settings, bodies_of(later))
    expected = sorted(record["log_id"] for record in [*good, *later])
    # (Offsets jump past the broker's offset-tracking entries: wait for the archive.)
    wait_until(
        "the later records archived",
        lambda: sorted(archived_log_ids(settings)),
        lambda ids: ids == expected,
        60,
    )
    assert again.running(), again.log()
    assert again.stop() == 0, again.log()
    assert "Traceback" not in again.log() + consumer.log()
    wait_until(
        "every good record searchable",
        lambda: sorted(opensearch_ids(settings)),
        lambda ids: ids == expected,
        30,
    )
    assert len(dead_letters(settings)) == 3
