"""Ed25519 keys for the archive's digests: the consumer's private key from
``AUDIT_LOG_SIGNING_KEY_FILE``, key ids, signatures and the public keys published in the bucket.

A key id is the first 32 hex digits of the SHA-256 of the raw 32-byte public key: it names the
key without trusting where it was found, so a public key stored under another key's id is
noticed by anyone who computes the id again.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from audit_logging.archive.digest_format import KEY_ID_RE
from audit_logging.errors import ConfigurationError

__all__ = ["KEY_ID_RE", "Signer", "key_id", "load_public_pem", "load_signer"]

_SETTING: Final = "AUDIT_LOG_SIGNING_KEY_FILE"
# A PEM private key is a few hundred bytes: anything much larger is not one.
_MAX_KEY_FILE: Final = 64 * 1024


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:32]


def public_pem(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_public_pem(data: bytes) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM bytes; ValueError if they hold anything else."""
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise ValueError(f"not a PEM public key ({type(exc).__name__})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"not an Ed25519 key but {type(key).__name__}")
    return key


def load_public_key_file(path: Path, option: str = "--public-key") -> Ed25519PublicKey:
    try:
        data = path.read_bytes()[: _MAX_KEY_FILE + 1]
    except OSError as exc:
        raise ConfigurationError(option, f"cannot read {str(path)!r}: {exc.strerror}") from None
    if len(data) > _MAX_KEY_FILE:
        # As for the private key: the first PEM block of a huge file is no key to trust.
        raise ConfigurationError(option, f"{str(path)!r} is too large for a PEM key")
    try:
        return load_public_pem(data)
    except ValueError as exc:
        raise ConfigurationError(option, f"{str(path)!r} is {exc}") from None


@dataclasses.dataclass(frozen=True)
class Signer:
    private: Ed25519PrivateKey
    key_id: str

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    def sign(self, message: bytes) -> str:
        return base64.b64encode(self.private.sign(message)).decode("ascii")


def load_signer(path: Path) -> Signer:
    """The private key of ``AUDIT_LOG_SIGNING_KEY_FILE``; errors name the file, never its
    content."""
    try:
        data = path.read_bytes()[: _MAX_KEY_FILE + 1]
    except OSError as exc:
        raise ConfigurationError(_SETTING, f"cannot read {str(path)!r}: {exc.strerror}") from None
    if len(data) > _MAX_KEY_FILE:
        raise ConfigurationError(_SETTING, f"{str(path)!r} is too large for a PEM key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ConfigurationError(
            _SETTING, f"{str(path)!r} is encrypted; give an unencrypted PEM key"
        ) from None
    except (ValueError, binascii.Error):
        raise ConfigurationError(_SETTING, f"{str(path)!r} is not a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigurationError(
            _SETTING, f"{str(path)!r} holds a {type(key).__name__}, not an Ed25519 key"
        )
    return Signer(key, key_id(key.public_key()))


def verify_signature(public: Ed25519PublicKey, message: bytes, signature: str) -> bool:
    try:
        raw = base64.b64decode(signature.encode("ascii"), validate=True)
        public.verify(raw, message)
    except (InvalidSignature, ValueError, binascii.Error, UnicodeEncodeError):
        return False
    return True


def new_private_pem() -> bytes:
    """A fresh unencrypted Ed25519 private key in PEM (``keygen``, tests)."""
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
