"""The spool's files: adopted as capture starts, private whatever the umask, and the
overflow moved into the segments without losing a record."""

from __future__ import annotations

import dataclasses
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from audit_logging._spool import Spool
from audit_logging.handlers import AuditHandler
from audit_logging.settings import Settings
from tests._ports import free_port
from tests._stack import stream_records
from tests.handlers._processes import leave_orphan

pytestmark = pytest.mark.services


def test_a_spool_left_by_a_dead_process_is_sent_as_capture_starts(settings: Settings) -> None:
    orphan = leave_orphan(settings, 100)
    assert sum(p.read_bytes().count(b"\n") for p in orphan.glob("seg-*.log")) == 100
    handler = AuditHandler(settings=settings)  # and no record logged
    try:
        deadline = time.monotonic() + 60
        while orphan.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not orphan.exists(), "the orphan spool was not adopted"
        records = stream_records(settings, settings.rabbitmq_stream_name, 100)
        assert sorted(int(r["object_id"]) for r in records) == list(range(100))
    finally:
        assert handler.close(timeout=10) == 0
    assert handler.stats()["lost"] == 0


def _modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root.parent)): stat.S_IMODE(p.stat().st_mode)
            for p in [root, *root.rglob("*")]}


def test_spool_folders_are_0700_and_files_0600_whatever_the_umask(settings: Settings) -> None:
    orphan = leave_orphan(settings, 10, umask=0)
    root = Path(settings.spool_dir)
    modes = _modes(root)
    assert {name: mode for name, mode in modes.items()
            if mode != (0o700 if (root.parent / name).is_dir() else 0o600)} == {}
    assert len(modes) >= 5, modes  # root, the folder, lock, producer, a segment, overflow
    assert (orphan / "seg-00000001.log").is_file()


def test_an_adopted_spool_is_made_private(settings: Settings) -> None:
    orphan = leave_orphan(settings, 10)
    os.chmod(orphan, 0o755)
    for item in orphan.iterdir():
        os.chmod(item, 0o644)
    offline = dataclasses.replace(settings, rabbitmq_stream_port=free_port())
    handler = AuditHandler(settings=offline)  # adopts it (and cannot send it)
    try:
        assert stat.S_IMODE(orphan.stat().st_mode) == 0o700
        assert {stat.S_IMODE(item.stat().st_mode) for item in orphan.iterdir()} == {0o600}
    finally:
        handler.close(timeout=1)


def test_the_overflow_is_durable_in_the_segments_before_it_leaves_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = Spool.create(tmp_path / "spool")
    overflow = spool.path / "overflow.log"
    for i in range(3):
        spool.append_overflow(b'{"n": %d}' % i)
    synced: list[tuple[str, int]] = []  # (file fsynced, overflow size at that moment)
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append((os.readlink(f"/proc/self/fd/{fd}"), overflow.stat().st_size))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    late = threading.Thread(target=spool.append_overflow, args=(b'{"n": "late"}',))

    def assign(bodies: list[bytes]) -> list[tuple[int, bytes]]:
        # An app thread appends while the drain works: it is not blocked, and kept.
        late.start()
        late.join(timeout=2)
        assert not late.is_alive(), "an app thread waited on the overflow drain"
        return list(enumerate(bodies, start=1))

    try:
        assert spool.drain_overflow(assign) == 3
        segment = str(spool.path / "seg-00000001.log")
        assert any(path == segment and size > 0 for path, size in synced), (
            f"the segment was not fsynced while the overflow still held them: {synced}")
        assert overflow.read_bytes() == b'{"n": "late"}\n'
        assert spool.overflow_count == 1
        assert [e.body for e in spool.read(10, 1 << 20)] == [b'{"n": %d}' % i for i in range(3)]
    finally:
        late.join(timeout=5)
        spool.close(remove_if_empty=False)
