"""Every header set in ``headers/`` through Django's stack (sessions, authentication and the
Django app's AuditMiddleware, a view logging one record), as ``test_middleware.py`` runs it
through the ASGI and WSGI middleware: the request succeeds and the record holds what the
file's ``expect`` says.

One rule differs, on purpose: the Django middleware records the session Django's store
knows, never the cookie's text; no file names a live session, so every record has none
(the files' session cookies are sent under Django's session cookie name, so they do reach
the store).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from audit_logging.testing import capture_audit_records
from tests.django_project.bootstrap import ensure_django, migrate
from tests.hostile.test_middleware import FILES, GENERATED, PLAIN_REQUEST_ID, header_value
from tests.middleware._drive import HASH_KEY, wsgi_environ


@pytest.fixture
def django_env(monkeypatch: pytest.MonkeyPatch) -> None:
    ensure_django()
    migrate()
    for name in ("AUDIT_LOG_FORWARDED_HEADER", "AUDIT_LOG_SESSION_KEY_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AUDIT_LOG_HASH_KEY", HASH_KEY)


@pytest.mark.parametrize("path", FILES, ids=[path.stem for path in FILES])
def test_hostile_headers_through_django(path: Path, django_env: None,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from django.conf import settings
    from django.test import Client, override_settings

    case = json.loads(path.read_text(encoding="utf-8"))
    headers = [(name, header_value(value)) for name, value in case["headers"]]
    if case.get("forwarded_header"):
        monkeypatch.setenv("AUDIT_LOG_FORWARDED_HEADER", case["forwarded_header"])
    environ = wsgi_environ(headers, case.get("client"))
    sent = {key: value for key, value in environ.items() if key.startswith("HTTP_")}
    sent["REMOTE_ADDR"] = environ.get("REMOTE_ADDR", "")
    options = {**settings.AUDIT_LOGGING, "TRUSTED_PROXIES": case.get("trusted_proxies", [])}

    with override_settings(AUDIT_LOGGING=options, SESSION_COOKIE_NAME="session"), \
            capture_audit_records(hash_key=HASH_KEY) as records:
        response = Client().get("/auth/orders/o-1/", **sent)

    assert response.status_code == 200
    (record,) = records
    assert response["X-Request-ID"] == record["request_id"]
    assert PLAIN_REQUEST_ID.fullmatch(record["request_id"])
    assert record["session_key"] is None
    assert not re.search(r"[\x00-\x1f\x7f]", record["user_agent"] or "")
    note = (record["extra"] or {}).get("ip_address_note")
    expect: dict[str, Any] = case["expect"]
    for key, want in expect.items():
        if key == "ip_address_note":
            assert (note is None) if want is None else (note is not None and want in note), note
        elif key in ("session_key_of", "session_key"):
            continue  # the rule above
        elif key == "request_id" and want == "generated":
            assert GENERATED.fullmatch(record["request_id"])
            assert record["request_id"] != {n.lower(): v for n, v in headers}.get("x-request-id")
        else:
            assert record[key] == want, key
