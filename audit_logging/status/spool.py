"""The local spool's depth on this host: records the app's handler has on disk and the
broker has not confirmed yet.

Read only: no lock is taken (a running app holds its folder's lock, and an app adopting a
dead process's folder must not find it held by status), nothing is written. A file that an
app removes meanwhile (a segment the broker confirmed) is read again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from audit_logging._spool import Spool
from audit_logging.errors import describe_error
from audit_logging.status.figures import Spool as SpoolFigures
from audit_logging.status.figures import SpoolFolder

# The file each spool folder names its producer in (what makes a folder a spool folder).
_PRODUCER_FILE: Final = "producer"
_ATTEMPTS: Final = 3
MAX_FOLDERS: Final = 10_000


def read_spool(path: Path) -> SpoolFigures:
    figures = SpoolFigures(str(path))
    if not path.is_dir():
        return figures
    figures.exists = True
    try:
        folders = sorted(item for item in path.iterdir()
                         if not item.name.startswith(".") and (item / _PRODUCER_FILE).is_file())
        for folder in folders[:MAX_FOLDERS]:
            records, size = _depth(folder)
            figures.folders.append(SpoolFolder(folder.name, records, size))
    except OSError as exc:
        figures.error = f"{path}: {describe_error(exc)}"
    figures.records = sum(folder.records for folder in figures.folders)
    figures.bytes = sum(folder.bytes for folder in figures.folders)
    return figures


def _depth(folder: Path) -> tuple[int, int]:
    for attempt in range(_ATTEMPTS):
        try:
            return Spool.pending_on_disk(folder), Spool.pending_bytes_on_disk(folder)
        except FileNotFoundError:
            if attempt == _ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")
