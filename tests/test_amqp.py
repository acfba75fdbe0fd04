from __future__ import annotations

import pytest
from rstream import AMQPMessage, Properties, amqp_decoder

from audit_logging._amqp import encode_message


@pytest.mark.parametrize("size", [1, 2, 255, 256, 1000, 70_000])  # a record is never empty
def test_messages_are_encoded_as_rstream_encodes_them(size: int) -> None:
    body = bytes(i % 251 for i in range(size))
    expected = bytes(AMQPMessage(body=body, properties=Properties(content_type="application/json")))
    assert encode_message(body) == expected
    decoded = amqp_decoder(encode_message(body))
    assert bytes(decoded.body) == body
    assert decoded.properties.content_type == b"application/json"
