"""From a raw stream message to a checked record, or to the reason it is not one."""

from __future__ import annotations

from typing import Any

from rstream import amqp_decoder

from audit_logging._decode import Rejection, decode_record


class NotARecord(Exception):  # noqa: N818 - an outcome, not a failure of the consumer
    """Why a message is dead-lettered; ``body`` is what we could extract (else the raw bytes),
    ``code`` the short reason (``not_amqp``, ``not_json``, ``too_deep``, ...)."""

    def __init__(self, reason: str, body: bytes, code: str = "not_amqp") -> None:
        super().__init__(reason)
        self.reason = reason
        self.body = body
        self.code = code


def message_body(raw: bytes) -> bytes:
    """The data section of an AMQP 1.0 message as written by any stream client."""
    try:
        message = amqp_decoder(raw)
    except Exception as exc:  # noqa: BLE001 - the decoder raises anything on garbage
        raise NotARecord(f"not_amqp: not an AMQP 1.0 message ({type(exc).__name__})", raw) from None
    body: Any = message.body
    if isinstance(body, list) and all(
        isinstance(part, (bytes, bytearray, memoryview)) for part in body
    ):
        # Several data sections: the record is their concatenation.
        body = b"".join(bytes(part) for part in body)
    if not isinstance(body, (bytes, bytearray, memoryview)):
        what = "an amqp-value section" if message.value is not None else "no data section"
        raise NotARecord(f"not_amqp: the AMQP message has {what}, not a JSON body", raw)
    return bytes(body)


def decode(raw: bytes) -> tuple[bytes, dict[str, Any]]:
    """(body, record) or :class:`NotARecord`; nothing else, whatever ``raw`` holds."""
    try:
        body = message_body(raw)
    except NotARecord:
        raise
    except Exception as exc:  # noqa: BLE001 - any message is one dead letter at worst
        raise NotARecord(f"not_amqp: {type(exc).__name__}", raw, "not_amqp") from None
    decoded = decode_record(body)
    if isinstance(decoded, Rejection):
        raise NotARecord(str(decoded), body, decoded.reason)
    return body, decoded
