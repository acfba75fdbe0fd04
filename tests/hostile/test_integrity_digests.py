"""Every object in ``digests/`` in the middle of a real signed chain (real S3 and RabbitMQ):
``python -m audit_logging.archive verify --integrity`` reports it as exactly one
``digest_unreadable`` problem naming its key, in bounded lines, exits 1, and never fails with
a traceback; the objects it listed are counted in that problem, not each reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from audit_logging.settings import Settings
from tests.archive._archive import archive_command
from tests.archive._digests import build_archive, get, new_signer, put
from tests.hostile.test_archive_files import load
from tests.hostile.test_digests import corpus

pytestmark = pytest.mark.services


@pytest.mark.parametrize("path", corpus(), ids=lambda p: p.stem)
def test_verify_integrity_names_it_once_in_bounded_lines(
    path: Path, settings: Settings, tmp_path: Path
) -> None:
    signer, public = new_signer(tmp_path, "k1")
    built = build_archive(settings, [signer] * 3)
    hostile = built.digests[1]
    put(settings, hostile, load(path).damage(get(settings, hostile)))

    done = archive_command(settings, "verify", "--integrity", "--json", "--public-key",
                           str(public))
    assert done.returncode == 1, (done.stdout[-2000:], done.stderr[-2000:])
    report = json.loads(done.stdout)
    [problem] = report["problems"]
    assert (problem["kind"], problem["key"]) == ("digest_unreadable", hostile)
    assert "\n" not in problem["detail"] and len(problem["detail"]) <= 300
    assert sorted(problem["objects"]) == sorted(built.objects[1])

    text = archive_command(settings, "verify", "--integrity", "--public-key", str(public))
    assert text.returncode == 1 and "Traceback" not in text.stderr
    lines = text.stdout.splitlines()
    assert all(len(line) <= 4000 for line in lines)
    assert sum(line.startswith("digest_unreadable: ") for line in lines) == 1
