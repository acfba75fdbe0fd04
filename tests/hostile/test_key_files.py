"""Every file in ``key_files/``: a key file as a deploy or someone with write access to the
bucket might leave it, made from a good Ed25519 PEM key (private or public). It is read in
three places, each tried here:

- ``AUDIT_LOG_SIGNING_KEY_FILE``: a real consumer process exits 2 at start with one line that
  names the setting and the file, never a line of its content, and no traceback;
- ``verify --integrity --public-key FILE``: exit 2, one bounded line naming ``--public-key``;
- the published copy in the bucket (``digest/public-keys/{key_id}.pem``, real S3): verify
  without a pinned key reports that object as a problem (exit 1), never a traceback.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from audit_logging.archive.digest_format import public_key_key
from audit_logging.settings import Settings
from tests.archive._archive import archive_command
from tests.archive._digests import build_archive, new_signer, put
from tests.consumer._helpers import consumer_env
from tests.hostile.test_archive_files import load

CORPUS = Path(__file__).parent / "key_files"


def corpus() -> list[Path]:
    return sorted(CORPUS.glob("*.py"))


def _content_lines(data: bytes) -> list[str]:
    """Lines of the file long enough to be recognised if echoed."""
    text = data[:100_000].decode("ascii", "replace")
    return [line for line in text.splitlines() if len(line) >= 16 and "-----" not in line]


def test_the_corpus_is_there() -> None:
    assert len(corpus()) >= 10


@pytest.mark.services
@pytest.mark.parametrize("path", corpus(), ids=lambda p: p.stem)
def test_a_consumer_given_it_as_its_signing_key_exits_2_naming_the_setting(
    path: Path, tmp_path: Path, settings: Settings, stack_env: dict[str, str]
) -> None:
    _, public = new_signer(tmp_path, "good")
    bad = tmp_path / "signing-key.pem"
    data = load(path).damage((tmp_path / "good.pem").read_bytes())
    bad.write_bytes(data)
    env = consumer_env(stack_env, settings, AUDIT_LOG_SIGNING_KEY_FILE=str(bad))
    done = subprocess.run(
        [sys.executable, "-m", "audit_logging.consumer"], env=env, cwd=tmp_path,
        capture_output=True, text=True, timeout=120, check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 2, output[-3000:]
    assert "AUDIT_LOG_SIGNING_KEY_FILE" in output and str(bad) in output, output[-3000:]
    assert "Traceback" not in output
    assert all(len(line) < 1000 for line in output.splitlines())
    for line in _content_lines(data):
        assert line not in output
    assert public.exists()


@pytest.mark.services
@pytest.mark.parametrize("path", corpus(), ids=lambda p: p.stem)
def test_verify_given_it_as_a_pinned_key_exits_2_naming_the_option(
    path: Path, tmp_path: Path, settings: Settings
) -> None:
    _, public = new_signer(tmp_path, "good")
    bad = tmp_path / "pinned.pem"
    bad.write_bytes(load(path).damage(public.read_bytes()))
    done = archive_command(settings, "verify", "--integrity", "--public-key", str(bad))
    assert done.returncode == 2, (done.stdout[-2000:], done.stderr[-2000:])
    assert "--public-key" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) <= 2
    assert all(len(line) < 1000 for line in done.stderr.splitlines())


@pytest.mark.services
@pytest.mark.parametrize("path", corpus(), ids=lambda p: p.stem)
def test_verify_reports_it_as_the_published_key_of_the_chain(
    path: Path, tmp_path: Path, settings: Settings
) -> None:
    signer, public = new_signer(tmp_path, "good")
    build_archive(settings, [signer] * 2)
    published = public_key_key(settings.s3_prefix, signer.key_id)
    put(settings, published, load(path).damage(public.read_bytes()))
    done = archive_command(settings, "verify", "--integrity", "--json")
    assert done.returncode == 1, (done.stdout[-2000:], done.stderr[-2000:])
    assert "Traceback" not in done.stderr
    text = archive_command(settings, "verify", "--integrity")
    assert text.returncode == 1 and "Traceback" not in text.stderr
    assert published in text.stdout + text.stderr
    assert all(len(line) < 2000 for line in (text.stdout + text.stderr).splitlines())
