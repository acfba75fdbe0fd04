"""A spool record confirmed out of order and resent after a lost connection is counted as
published once (a super stream's partitions confirm out of order; the broker confirms the
resent duplicate again)."""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from audit_logging._link import Link
from audit_logging._outbox import Outbox
from audit_logging._spool import Spool
from audit_logging.settings import Settings


def _ignore(*_: object) -> None:
    return None


def _no_report(kind: str, level: int, message: str, *args: object) -> None:
    return None


def _confirm(link: Link, *ids: int) -> None:
    for pid in ids:
        link.on_confirm(SimpleNamespace(message_id=pid, is_confirmed=True))


def test_a_confirmed_spool_record_resent_after_a_rewind_counts_once(tmp_path: Path) -> None:
    counts: collections.Counter[str] = collections.Counter()
    outbox = Outbox(bytes, 10, _no_report, counts)
    spool = outbox.spool = Spool.create(tmp_path)
    spool.append([(1, b'{"n":1}'), (2, b'{"n":2}'), (3, b'{"n":3}')])
    spool.sync()
    link = Link(
        Settings.load(env_file=None), outbox, _no_report, wake=_ignore, stop_requested=lambda: False
    )
    sent: list[list[int]] = []

    async def send(records: list[tuple[int, Any]]) -> None:
        sent.append([pid for pid, _ in records])

    link.send = send  # type: ignore[method-assign]
    asyncio.run(link.send_from_spool())
    _confirm(link, 2, 3)  # partitions answer out of order: 1 is still unconfirmed
    assert counts["published"] == 2
    asyncio.run(link.disconnect("connection lost"))  # nothing committed: 1 blocks the commit
    asyncio.run(link.send_from_spool())
    assert sent == [[1, 2, 3], [1, 2, 3]]
    _confirm(link, 1, 2, 3)
    assert counts["published"] == 3
    link.commit_spool()
    assert not link.confirmed_from_spool
    spool.close(remove_if_empty=True)
