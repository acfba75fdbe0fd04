"""Every partition name in ``partitions/`` as a broker could list it for a super stream.

An operator may create a super stream whose partitions have any name RabbitMQ accepts, and
the names go into S3 keys and log lines. Each hostile name must be refused with one short
line naming the setting, before anything is read or written with it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from audit_logging.errors import ConfigurationError
from audit_logging.partitions import check_count

NAMES = Path(__file__).parent / "partitions"


def corpus() -> list[Path]:
    return sorted(path for path in NAMES.iterdir() if path.is_file())


@pytest.mark.parametrize("path", corpus(), ids=lambda path: path.name)
def test_a_hostile_partition_name_is_refused_in_one_bounded_line(path: Path) -> None:
    name = path.read_bytes().decode("utf-8", "surrogateescape")
    with pytest.raises(ConfigurationError) as caught:
        check_count("audit_logs_stream", 2, ["audit_logs_stream-0", name])
    message = str(caught.value)
    assert message.startswith("Setting RABBITMQ_STREAM_NAME:")
    assert "\n" not in message and "\x00" not in message
    assert len(message) < 1000
