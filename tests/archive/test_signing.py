"""The digests' Ed25519 keys: what AUDIT_LOG_SIGNING_KEY_FILE accepts, the errors for what it
does not (naming the setting and the file, never its content), and the README's openssl
commands giving a key the consumer loads, with the key id the README's pipeline prints."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from audit_logging.archive.signing import (
    key_id,
    load_public_key_file,
    load_signer,
    new_private_pem,
    public_pem,
    verify_signature,
)
from audit_logging.errors import ConfigurationError

README = Path(__file__).resolve().parents[2] / "README.md"


def test_a_signature_verifies_only_for_its_message_and_key(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(new_private_pem())
    signer = load_signer(path)
    signature = signer.sign(b"digest")
    assert verify_signature(signer.public, b"digest", signature)
    assert not verify_signature(signer.public, b"digest!", signature)
    other = tmp_path / "other.pem"
    other.write_bytes(new_private_pem())
    assert not verify_signature(load_signer(other).public, b"digest", signature)
    for garbage in ("", "not base64!", "AAAA", signature[:-4] + "AAA="):
        assert not verify_signature(signer.public, b"digest", garbage)
    assert re.fullmatch(r"[0-9a-f]{32}", signer.key_id)
    assert key_id(signer.public) == signer.key_id


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, password: bytes | None) -> bytes:
    encryption: serialization.KeySerializationEncryption = serialization.NoEncryption()
    if password:
        encryption = serialization.BestAvailableEncryption(password)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "cannot read"),
        (b"", "is not a PEM private key"),
        (b"-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n", "not a PEM"),
        (b"x" * (65 * 1024), "too large"),
        ("rsa", "not an Ed25519 key"),
        ("ec", "not an Ed25519 key"),
        ("encrypted", "is encrypted"),
    ],
)
def test_a_bad_key_file_is_refused_naming_the_setting_and_never_the_content(
    tmp_path: Path, content: bytes | str | None, says: str
) -> None:
    path = tmp_path / "key.pem"
    if content == "rsa":
        data = _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048), None)
    elif content == "ec":
        data = _pem(ec.generate_private_key(ec.SECP256R1()), None)
    elif content == "encrypted":
        data = _pem(ec.generate_private_key(ec.SECP256R1()), b"secret-pass")
    else:
        data = content if isinstance(content, bytes) else b""
    if content is not None:
        path.write_bytes(data)
    with pytest.raises(ConfigurationError) as caught:
        load_signer(path)
    message = str(caught.value)
    assert "AUDIT_LOG_SIGNING_KEY_FILE" in message and str(path) in message
    assert says in message
    body = data.decode("ascii", "replace")
    for line in body.splitlines():
        if len(line) > 20 and "-----" not in line:
            assert line not in message


def test_a_public_key_file_that_is_no_ed25519_key_is_refused_naming_the_option(
    tmp_path: Path,
) -> None:
    path = tmp_path / "pinned.pem"
    path.write_bytes(b"hello")
    with pytest.raises(ConfigurationError, match="--public-key"):
        load_public_key_file(path)
    rsa_public = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    path.write_bytes(
        rsa_public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    with pytest.raises(ConfigurationError, match="not an Ed25519 key"):
        load_public_key_file(path)
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_public_key_file(tmp_path / "missing.pem")


def test_the_readmes_openssl_commands_make_a_key_the_consumer_loads(tmp_path: Path) -> None:
    text = README.read_text(encoding="utf-8")
    # The commands as the README gives them, run in a folder of their own.
    make = re.search(r"^openssl genpkey [^\n#]*", text, re.M)
    public = re.search(r"^openssl pkey -in [^\n#]*", text, re.M)
    fingerprint = re.search(r"`(openssl pkey -pubin[^`]*)`", text, re.S)
    assert make and public and fingerprint
    for command in (make.group(0), public.group(0)):
        subprocess.run(command, shell=True, cwd=tmp_path, check=True, capture_output=True)
    signer = load_signer(tmp_path / "audit-signing.pem")
    pinned = load_public_key_file(tmp_path / "audit-signing.pub.pem")
    assert public_pem(pinned) == public_pem(signer.public)
    pipeline = " ".join(fingerprint.group(1).split())
    printed = subprocess.run(
        pipeline, shell=True, cwd=tmp_path, check=True, capture_output=True, text=True
    ).stdout.strip()
    assert printed == signer.key_id
