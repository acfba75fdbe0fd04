"""A valid key, but ECDSA P-256: another algorithm that signs short messages too."""

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def damage(good: bytes) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    if b"PRIVATE" in good:
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
