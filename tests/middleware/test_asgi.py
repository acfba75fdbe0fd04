from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from typing import Any

import httpx
import pytest

from audit_logging.errors import ConfigurationError
from audit_logging.middleware import AuditMiddleware, RequestAudit
from audit_logging.settings import Settings
from audit_logging.testing import capture_audit_records
from tests.middleware._apps import starlette_app

HASH_KEY = "test-hash-key-0123456789"
SETTINGS = Settings.load(environ={}, env_file=None, hash_key=HASH_KEY)


def expected_hash(raw: str) -> str:
    return "hmac-sha256:" + hmac.new(HASH_KEY.encode(), raw.encode(), hashlib.sha256).hexdigest()


async def call(app: Any, method: str, path: str, *, client: str = "198.51.100.7",
               headers: dict[str, str] | None = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, client=(client, 40000), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        return await http.request(method, path, headers=headers)


def test_records_inside_a_request_carry_the_request_context() -> None:
    app = starlette_app(settings=SETTINGS, session_cookie="sessionid")
    with capture_audit_records(hash_key=HASH_KEY) as records:
        response = asyncio.run(call(app, "POST", "/customers/cus_1", headers={
            "User-Agent": "Mozilla/5.0 (test)", "Cookie": "a=1; sessionid=s3cr3t; b=2",
            "X-Request-ID": "req-42", "X-User": "user_123:john.doe",
        }))
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "req-42"
    (record,) = records
    assert record["ip_address"] == "198.51.100.7"
    assert record["user_agent"] == "Mozilla/5.0 (test)"
    assert record["session_key"] == expected_hash("s3cr3t")
    assert record["request_id"] == "req-42"
    assert (record["user_id"], record["username"]) == ("user_123", "john.doe")
    assert record["object_id"] == "cus_1"


def test_spoofed_forwarded_for_from_an_untrusted_client_is_ignored() -> None:
    app = starlette_app(settings=SETTINGS, trusted_proxies=["10.0.0.0/8"])
    with capture_audit_records() as records:
        asyncio.run(call(app, "GET", "/customers/c", client="198.51.100.7", headers={
            "X-Forwarded-For": "1.2.3.4", "Forwarded": "for=5.6.7.8"}))
    assert records[0]["ip_address"] == "198.51.100.7"


@pytest.mark.parametrize(
    ("forwarded_header", "headers", "expected"),
    [
        (None, {"X-Forwarded-For": "203.0.113.5"}, "203.0.113.5"),
        (None, {"X-Forwarded-For": "6.6.6.6, 203.0.113.5, 10.1.1.1"}, "203.0.113.5"),
        ("Forwarded", {"Forwarded": 'for=192.0.2.60;proto=http, for="[2001:db8:cafe::17]:4711"'},
         "2001:db8:cafe::17"),
        (None, {"X-Forwarded-For": "192.0.2.1:8080"}, "192.0.2.1"),
        (None, {}, "10.0.0.1"),
    ],
)
def test_trusted_proxy_hops_give_the_rightmost_untrusted_address(
    forwarded_header: str | None, headers: dict[str, str], expected: str
) -> None:
    app = starlette_app(settings=SETTINGS, trusted_proxies=["10.0.0.0/8"],
                        forwarded_header=forwarded_header)
    with capture_audit_records() as records:
        asyncio.run(call(app, "GET", "/customers/c", client="10.0.0.1", headers=headers))
    assert records[0]["ip_address"] == expected


def test_invalid_address_from_a_trusted_proxy_is_dropped_with_a_note() -> None:
    app = starlette_app(settings=SETTINGS, trusted_proxies=["10.0.0.1"])
    with capture_audit_records() as records:
        asyncio.run(call(app, "GET", "/customers/c", client="10.0.0.1",
                         headers={"X-Forwarded-For": "999.1.1.1"}))
    assert records[0]["ip_address"] is None
    assert "invalid" in records[0]["extra"]["ip_address_note"]


@pytest.mark.parametrize("given", ["x" * 129, "bad id with spaces", "<script>", "a;b"])
def test_unusable_request_id_is_replaced(given: str) -> None:
    app = starlette_app(settings=SETTINGS)
    with capture_audit_records() as records:
        response = asyncio.run(call(app, "GET", "/customers/c",
                                    headers={"X-Request-ID": given}))
    generated = records[0]["request_id"]
    assert generated != given
    assert len(generated) == 32
    assert response.headers["x-request-id"] == generated


def test_per_request_record_for_configured_methods_even_when_the_app_fails() -> None:
    app = starlette_app(settings=SETTINGS, audit_requests=RequestAudit())
    with capture_audit_records() as records:
        ok = asyncio.run(call(app, "POST", "/customers/c1"))
        failed = asyncio.run(call(app, "POST", "/fail"))
        asyncio.run(call(app, "GET", "/customers/c2"))
    assert (ok.status_code, failed.status_code) == (200, 500)
    requests = [r for r in records if r["action"] == "HTTP_REQUEST"]
    assert [(r["object_id"], r["extra"]["status_code"]) for r in requests] == [
        ("/customers/c1", 200), ("/fail", 500)]
    assert requests[1]["change_message"] == "POST /fail -> 500"
    assert all(r["request_id"] for r in requests)


def test_concurrent_requests_do_not_see_each_others_context() -> None:
    app = starlette_app(settings=SETTINGS)

    async def many() -> None:
        await asyncio.gather(*(
            call(app, "POST", f"/customers/c{i}", client=f"192.0.2.{i}",
                 headers={"X-Request-ID": f"req-{i}"})
            for i in range(1, 40)
        ))

    with capture_audit_records() as records:
        asyncio.run(many())
    assert len(records) == 39
    for record in records:
        i = record["object_id"].removeprefix("c")
        assert record["ip_address"] == f"192.0.2.{i}"
        assert record["request_id"] == f"req-{i}"


def test_other_scope_types_pass_straight_through() -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    middleware = AuditMiddleware(app, settings=SETTINGS)
    asyncio.run(middleware({"type": "lifespan"}, None, None))  # type: ignore[arg-type]
    asyncio.run(middleware({"type": "websocket", "headers": []}, None, None))  # type: ignore[arg-type]
    assert seen == ["lifespan", "websocket"]


def test_hashing_sessions_without_a_hash_key_fails_at_start() -> None:
    no_key = Settings.load(environ={}, env_file=None)
    with pytest.raises(ConfigurationError, match="AUDIT_LOG_HASH_KEY"):
        AuditMiddleware(starlette_app, settings=no_key)  # type: ignore[arg-type]
    AuditMiddleware(starlette_app, settings=no_key, session_cookie=None)  # type: ignore[arg-type]


def test_bad_trusted_proxy_is_named() -> None:
    with pytest.raises(ConfigurationError, match="trusted_proxies.*'10.0.0.300'"):
        AuditMiddleware(starlette_app, settings=SETTINGS,  # type: ignore[arg-type]
                        trusted_proxies=["10.0.0.300"])


def test_no_context_leaks_out_of_the_request() -> None:
    from audit_logging.context import current_context

    app = starlette_app(settings=SETTINGS)
    with capture_audit_records():
        asyncio.run(call(app, "GET", "/customers/c"))
    assert current_context() is None
    logging.getLogger("audit").handlers.clear()
