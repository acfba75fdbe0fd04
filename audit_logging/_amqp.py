"""The AMQP 1.0 message every record travels in: a properties section whose only value is
``content-type: application/json``, and one data section holding the record's JSON.

Encoded here, byte for byte as rstream's encoder would (tests/test_amqp.py checks it), because
that encoder, in pure Python, costs more per record than everything else the publisher does.
"""

from __future__ import annotations

from typing import Final

CONTENT_TYPE: Final = b"application/json"

# Properties: described type 0x73, a list8 of the 13 fields, content-type (the 7th) set.
_PROPERTY_FIELDS: Final = b"\x40" * 6 + b"\xa3" + bytes((len(CONTENT_TYPE),)) + CONTENT_TYPE
_PROPERTY_LIST: Final = _PROPERTY_FIELDS + b"\x40" * 6
_PROPERTIES: Final = (
    b"\x00\x53\x73\xc0" + bytes((len(_PROPERTY_LIST) + 1, 13)) + _PROPERTY_LIST
)
# Data: described type 0x75 with a binary value (vbin8 or vbin32).
_DATA: Final = b"\x00\x53\x75"


def encode_message(body: bytes) -> bytes:
    """One AMQP 1.0 message with ``body`` as its data section."""
    size = len(body)
    if size < 256:
        return b"".join((_PROPERTIES, _DATA, b"\xa0", bytes((size,)), body))
    return b"".join((_PROPERTIES, _DATA, b"\xb0", size.to_bytes(4, "big"), body))
