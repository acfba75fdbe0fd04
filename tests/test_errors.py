"""The one error describer every sink's retry and log line uses."""

from __future__ import annotations

from botocore.exceptions import ClientError
from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError
from opensearchpy.exceptions import TransportError

from audit_logging.errors import describe_error


def test_s3_errors_show_the_status_and_code() -> None:
    exc = ClientError(
        {
            "Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."},
            "ResponseMetadata": {
                "HTTPStatusCode": 503,
                "HTTPHeaders": {},
                "HostId": "",
                "RequestId": "",
                "RetryAttempts": 0,
            },
        },
        "PutObject",
    )
    assert describe_error(exc) == "HTTP 503 SlowDown: Please reduce your request rate."


def test_opensearch_errors_show_the_status_type_and_reason() -> None:
    info = {"error": {"type": "cluster_block_exception", "reason": "index read-only"}}
    exc = TransportError(403, "cluster_block_exception", info)
    assert describe_error(exc) == "HTTP 403 cluster_block_exception: index read-only"
    assert describe_error(TransportError(500, "boom")) == "HTTP 500 boom"


def test_a_connection_error_names_its_class() -> None:
    exc = OpenSearchConnectionError("N/A", "Connection refused", None)
    assert describe_error(exc).startswith("ConnectionError")
    assert describe_error(ConnectionResetError()) == "ConnectionResetError"


def test_one_bounded_line_that_cannot_forge_log_lines() -> None:
    exc = ValueError("first\nWARNING forged line\r\n" + "x" * 1000)
    text = describe_error(exc, 120, "index_action: ")
    assert "\n" not in text and "\r" not in text
    assert len(text) == 120 and text.endswith("...")
    assert text.startswith("index_action: ValueError: first WARNING forged line x")
