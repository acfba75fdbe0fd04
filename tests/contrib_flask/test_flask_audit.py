"""``FlaskAudit``: one stored session key for the life of a Flask session, the user read
inside the request, and what the app's session may hold under the extension's key."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, session
from flask.testing import FlaskClient

from audit_logging.contrib.flask import SESSION_ID_KEY, FlaskAudit
from audit_logging.errors import ConfigurationError
from audit_logging.settings import Settings
from audit_logging.testing import capture_audit_records

HASH_KEY = "flask-test-hash-key-0123456789"
audit = logging.getLogger("audit")


class ClosingClient(FlaskClient):
    """Reads each response whole and closes it, as a server does: the middleware releases
    the request's context at close, which the test client otherwise leaves to the test."""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("buffered", True)
        return super().open(*args, **kwargs)


def make_app(**options: Any) -> Flask:
    app = Flask(__name__)
    app.test_client_class = ClosingClient
    app.secret_key = "test-secret"
    FlaskAudit(app, settings=Settings.load(env_file=None, hash_key=HASH_KEY), **options)

    @app.post("/login/<user>")
    def login(user: str) -> str:
        session["user"] = user
        audit.info("in", extra={"action": "LOGIN"})
        return "ok"

    @app.post("/logout")
    def logout() -> str:
        audit.info("out", extra={"action": "LOGOUT"})
        session.clear()
        return "ok"

    @app.post("/act")
    def act() -> str:
        session["n"] = session.get("n", 0) + 1  # the cookie changes on every call
        audit.info("acted", extra={"action": "UPDATE"})
        return "ok"

    @app.post("/quiet")
    def quiet() -> str:
        session["theme"] = "dark"  # a session begun without any record
        return "ok"

    return app


@pytest.fixture
def records() -> Iterator[list[dict[str, Any]]]:
    with capture_audit_records(hash_key=HASH_KEY) as captured:
        yield captured


def test_one_session_key_while_the_cookie_changes(records: list[dict[str, Any]]) -> None:
    client = make_app().test_client()
    client.post("/act")  # anonymous: the session begins here with its first record
    client.post("/act")
    client.post("/login/ada")
    client.post("/act")
    keys = {record["session_key"] for record in records}
    assert len(records) == 4 and len(keys) == 1
    (key,) = keys
    assert key.startswith("hmac-sha256:")


def test_a_new_session_after_logout_gets_a_new_key(records: list[dict[str, Any]]) -> None:
    client = make_app().test_client()
    client.post("/login/ada")
    client.post("/logout")
    client.post("/login/bob")
    first, logout, second = (record["session_key"] for record in records)
    assert first == logout != second


def test_an_anonymous_visit_gets_no_cookie_and_no_session_key(
    records: list[dict[str, Any]],
) -> None:
    app = make_app()

    @app.get("/look")
    def look() -> str:
        audit.info("looked", extra={"action": "VIEW"})
        return "ok"

    response = app.test_client().get("/look")
    assert "Set-Cookie" not in response.headers
    assert records[0].get("session_key") is None


def test_a_session_begun_without_a_record_keeps_its_key_for_the_next(
    records: list[dict[str, Any]],
) -> None:
    client = make_app().test_client()
    client.post("/quiet")
    with client.session_transaction() as state:
        made = state[SESSION_ID_KEY]
    client.post("/act")
    assert records[0]["session_key"] != made  # hashed, never the id itself
    with client.session_transaction() as state:
        assert state[SESSION_ID_KEY] == made


@pytest.mark.parametrize(
    "planted",
    [
        "short",
        "x" * 33,
        "../../etc/passwd-0123456789abcdef0",
        {"id": "a" * 32},
        ["a" * 32],
        12345678901234567890,
        "a" * 31 + "\n",
    ],
    ids=["short", "long", "path", "dict", "list", "int", "newline"],
)
def test_a_value_the_extension_did_not_write_is_replaced(
    records: list[dict[str, Any]], planted: object
) -> None:
    client = make_app().test_client()
    with client.session_transaction() as state:
        state["user"] = "ada"
        state[SESSION_ID_KEY] = planted
    client.post("/act")
    with client.session_transaction() as state:
        replaced = state[SESSION_ID_KEY]
    assert replaced != planted and isinstance(replaced, str) and len(replaced) == 32
    assert records[0]["session_key"].startswith("hmac-sha256:")


def test_the_user_is_read_when_the_record_is_made(records: list[dict[str, Any]]) -> None:
    client = make_app(get_user=lambda: (session.get("user"), session.get("user"))).test_client()
    client.post("/login/ada")
    assert (records[0]["user_id"], records[0]["username"]) == ("ada", "ada")


def test_a_failing_user_lookup_does_not_fail_the_request(records: list[dict[str, Any]]) -> None:
    def broken() -> tuple[str | None, str | None]:
        raise RuntimeError("user store down")

    response = make_app(get_user=broken).test_client().post("/login/ada")
    assert response.status_code == 200
    assert records[0]["user_id"] is None


def test_track_sessions_off_stores_no_session(records: list[dict[str, Any]]) -> None:
    client = make_app(track_sessions=False).test_client()
    client.post("/login/ada")
    assert records[0]["session_key"] is None
    with client.session_transaction() as state:
        assert SESSION_ID_KEY not in state


def test_sessions_hashed_without_a_key_are_refused_at_start() -> None:
    with pytest.raises(ConfigurationError, match="AUDIT_LOG_HASH_KEY.*track_sessions=False"):
        FlaskAudit(Flask(__name__), settings=Settings.load(env_file=None, environ={}))


def test_set_up_twice_on_one_app_is_refused() -> None:
    app = Flask("twice")
    settings = Settings.load(env_file=None, hash_key=HASH_KEY)
    FlaskAudit(app, settings=settings)
    with pytest.raises(ConfigurationError, match="FlaskAudit.*'twice'"):
        FlaskAudit(app, settings=settings)
