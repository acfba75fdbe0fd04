"""The spool's depth as status counts it: records and bytes the broker has not confirmed, in
every folder, read while the owner holds its lock, without changing a byte."""

from __future__ import annotations

import hashlib
from pathlib import Path

from audit_logging._spool import Position, Spool
from audit_logging.status.spool import read_spool


def _fingerprint(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_no_folder_is_no_spool(tmp_path: Path) -> None:
    figures = read_spool(tmp_path / "absent")
    assert (figures.exists, figures.records, figures.bytes, figures.error) == (False, 0, 0, None)


def test_pending_records_and_bytes_of_every_folder(tmp_path: Path) -> None:
    root = tmp_path / "spool"
    first = Spool.create(root)  # held, as by a running app
    second = Spool.create(root)
    try:
        records = [(pid, b'{"log_id":"%d"}' % pid) for pid in range(1, 11)]
        first.append(records)
        first.sync()
        # The broker confirmed the first four records of the first folder.
        upto = first.read(4, 1 << 20)[-1].end
        first.commit(Position(upto.segment, upto.offset), 4)
        first.append_overflow(b'{"log_id":"overflow"}')
        second.append(records[:2])
        second.sync()
        before = _fingerprint(root)
        figures = read_spool(root)
        assert _fingerprint(root) == before
    finally:
        first.close()
        second.close()
    pending_first = sum(len(b"%d\t%s\n" % record) for record in records[4:]) + len(
        b'{"log_id":"overflow"}\n')
    pending_second = sum(len(b"%d\t%s\n" % record) for record in records[:2])
    by_name = {folder.name: (folder.records, folder.bytes) for folder in figures.folders}
    assert by_name == {first.producer_name: (7, pending_first),
                       second.producer_name: (2, pending_second)}
    assert (figures.records, figures.bytes) == (9, pending_first + pending_second)
