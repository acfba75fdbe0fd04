"""An error text a service sends back (S3's message, OpenSearch's reason) reaches our log
lines and retry messages as one bounded line: it cannot forge a log line or flood the log."""

from __future__ import annotations

from botocore.exceptions import ClientError
from opensearchpy.exceptions import TransportError

from audit_logging.errors import describe_error

FORGED = "refused\r\n2026-12-01 10:00:00,000 INFO audit_logging.consumer: all records archived\n"


def test_an_s3_error_message_with_line_breaks_and_10_kib_stays_one_bounded_line() -> None:
    exc = ClientError(
        {
            "Error": {"Code": "AccessDenied\n", "Message": FORGED + "x" * 10_240},
            "ResponseMetadata": {
                "HTTPStatusCode": 403,
                "HTTPHeaders": {},
                "HostId": "",
                "RequestId": "",
                "RetryAttempts": 0,
            },
        },
        "PutObject",
    )
    text = describe_error(exc)
    assert "\n" not in text and "\r" not in text
    assert len(text) <= 300 and text.startswith("HTTP 403 AccessDenied")


def test_an_opensearch_reason_with_line_breaks_stays_one_bounded_line() -> None:
    info = {"error": {"type": "x\ny", "reason": FORGED * 200}}
    text = describe_error(TransportError(500, "boom", info))
    assert "\n" not in text and "\r" not in text
    assert len(text) <= 300 and text.startswith("HTTP 500 x y: refused")
