"""A valid key, but RSA: the digests are Ed25519."""

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def damage(good: bytes) -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if b"PRIVATE" in good:
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
