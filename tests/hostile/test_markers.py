"""Every consumer-group marker in ``markers/`` read back from the real S3 server.

The marker ``{prefix}_consumer-groups/{stream}.json`` names the group that archives a stream;
anyone with write access to the bucket can put anything there. A consumer that finds one must
refuse to start with a short, one-line error (the marker's text never reaches the log as it
is), never crash or read it whole into an error. A file named ``*.same-group.*`` names the
starting group itself: that consumer starts.
"""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest

from audit_logging.consumer.groups import claim_archive, marker_key
from audit_logging.consumer.s3 import S3Store, make_s3_client
from audit_logging.errors import ConfigurationError
from audit_logging.settings import Settings

pytestmark = [pytest.mark.services]
MARKERS = Path(__file__).parent / "markers"
GROUP = "archive-b"


def corpus() -> list[Path]:
    return sorted(path for path in MARKERS.iterdir() if path.is_file())


@pytest.mark.parametrize("path", corpus(), ids=lambda path: path.name)
def test_a_consumer_reads_a_hostile_marker_safely(settings: Settings, path: Path) -> None:
    store = S3Store(make_s3_client(settings), settings.require("s3_bucket"), threading.Event())
    prefix = f"{settings.s3_prefix}markers-{uuid.uuid4().hex[:8]}/"
    stream = "hostile-marker"
    raw = path.read_bytes()
    assert store.put_create_only(marker_key(prefix, stream), raw, "application/json")

    if ".same-group." in path.name:
        claim_archive(store, prefix, stream, GROUP)
        return
    with pytest.raises(ConfigurationError) as refused:
        claim_archive(store, prefix, stream, GROUP)
    message = str(refused.value)
    assert "--consumer-name" in message and "AUDIT_LOG_S3_PREFIX" in message
    assert not any(ch in message for ch in "\r\n\x1b\x00"), message
    assert len(message) < 1_500, len(message)
    owner = message.split("by consumer group '", 1)[1].split("'", 1)[0]
    assert owner in {"archive-a", "<unreadable marker>"}, owner
