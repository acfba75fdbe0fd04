from __future__ import annotations

import hashlib
import hmac

import httpx
import pytest

from audit_logging.middleware import AuditWSGIMiddleware, RequestAudit
from audit_logging.settings import Settings
from audit_logging.testing import capture_audit_records
from tests.middleware._apps import wsgi_app

HASH_KEY = "test-hash-key-0123456789"
SETTINGS = Settings.load(environ={}, env_file=None, hash_key=HASH_KEY)


def client(app: AuditWSGIMiddleware, remote: str = "198.51.100.7") -> httpx.Client:
    transport = httpx.WSGITransport(app=app, remote_addr=remote)
    return httpx.Client(transport=transport, base_url="http://test")


def test_records_inside_a_request_and_its_streamed_response_carry_the_context() -> None:
    app = AuditWSGIMiddleware(wsgi_app, settings=SETTINGS,
                              get_user=lambda environ: ("u-9", environ.get("HTTP_X_USER")))
    with capture_audit_records(hash_key=HASH_KEY) as records:
        response = client(app).get("/reports/r1", headers={
            "User-Agent": "curl/8", "Cookie": "session=abc", "X-Request-ID": "req-7",
            "X-User": "alice"})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "req-7"
    assert [r["action"] for r in records] == ["VIEW", "EXPORT"]
    for record in records:
        assert record["ip_address"] == "198.51.100.7"
        assert record["user_agent"] == "curl/8"
        assert record["session_key"] == "hmac-sha256:" + hmac.new(
            HASH_KEY.encode(), b"abc", hashlib.sha256).hexdigest()
        assert record["request_id"] == "req-7"
        assert (record["user_id"], record["username"]) == ("u-9", "alice")


def test_spoofed_forwarded_for_is_ignored_and_trusted_one_used() -> None:
    app = AuditWSGIMiddleware(wsgi_app, settings=SETTINGS, trusted_proxies=["10.0.0.0/8"])
    with capture_audit_records() as records:
        client(app, "198.51.100.7").get("/reports/a", headers={"X-Forwarded-For": "1.2.3.4"})
        client(app, "10.0.0.3").get("/reports/b", headers={"X-Forwarded-For": "203.0.113.8"})
    assert [r["ip_address"] for r in records if r["action"] == "VIEW"] == [
        "198.51.100.7", "203.0.113.8"]


def test_per_request_record_after_the_response_is_closed_and_on_failure() -> None:
    app = AuditWSGIMiddleware(wsgi_app, settings=SETTINGS,
                              audit_requests=RequestAudit(methods=frozenset({"GET", "POST"})))
    with capture_audit_records() as records:
        client(app).get("/reports/r2")
        with pytest.raises(RuntimeError, match="boom"):
            client(app).post("/fail")
    assert [r["action"] for r in records] == ["VIEW", "EXPORT", "HTTP_REQUEST", "HTTP_REQUEST"]
    assert [r["extra"]["status_code"] for r in records[2:]] == [200, 500]
    # The per-request record comes after the streamed one: logged once the body is done.
    assert records[2]["request_id"] == records[0]["request_id"]


def test_context_is_released_after_the_response() -> None:
    from audit_logging.context import current_context

    app = AuditWSGIMiddleware(wsgi_app, settings=SETTINGS)
    with capture_audit_records():
        client(app).get("/reports/r3")
    assert current_context() is None


def test_remote_user_is_the_default_user() -> None:
    app = AuditWSGIMiddleware(wsgi_app, settings=SETTINGS)
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/reports/x", "REMOTE_ADDR": "192.0.2.1",
               "REMOTE_USER": "bob", "wsgi.input": None}
    with capture_audit_records() as records:
        body = app(environ, lambda status, headers, exc_info=None: lambda data: None)
        list(body)
        body.close()  # type: ignore[attr-defined]
    assert records[0]["username"] == "bob"
