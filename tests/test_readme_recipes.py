"""The README's framework recipes, extracted from README.md and run against the real stack."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import audit_logging
from audit_logging.settings import Settings
from tests._stack import stream_records

pytestmark = pytest.mark.services
README = Path(__file__).resolve().parent.parent / "README.md"
HASH_KEY = "recipe-hash-key-0123456789"


def recipe(name: str) -> str:
    match = re.search(
        rf"<!-- recipe: {re.escape(name)} -->\s*```python\n(.*?)```", README.read_text(), re.S
    )
    assert match, f"README.md has no recipe {name!r}"
    return match.group(1)


def load(name: str, module_name: str) -> types.ModuleType:
    """Import a recipe as a module (as the app would import its own file)."""
    module = types.ModuleType(module_name)
    module.__file__ = f"<README recipe {name}>"
    sys.modules[module_name] = module
    exec(compile(recipe(name), module.__file__, "exec"), module.__dict__)
    return module


@pytest.fixture
def app_env(settings: Settings, monkeypatch: pytest.MonkeyPatch, stack_env: dict[str, str]
            ) -> Iterator[Settings]:
    """The environment an app on the local stack has: configure() reads it."""
    for key, value in stack_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("RABBITMQ_STREAM_NAME", settings.rabbitmq_stream_name)
    monkeypatch.setenv("AUDIT_LOG_SPOOL_DIR", str(settings.spool_dir))
    monkeypatch.setenv("AUDIT_LOG_HASH_KEY", HASH_KEY)
    monkeypatch.chdir(settings.spool_dir.parent)  # no stray .env from the work tree
    yield settings
    audit_logging.shutdown(timeout=10)


def test_fastapi_recipe(app_env: Settings) -> None:
    module = load("fastapi", "recipe_fastapi")

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=module.app, client=("10.0.0.7", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
            return await http.post("/customers/cus_77", headers={
                "X-Forwarded-For": "203.0.113.50", "Cookie": "session=sess-1",
                "User-Agent": "recipe-test", "X-Request-ID": "req-fastapi"})

    response = asyncio.run(call())
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "req-fastapi"
    assert audit_logging.flush(timeout=30) == 0
    records = stream_records(app_env, app_env.rabbitmq_stream_name, 2)
    by_action = {r["action"]: r for r in records}
    update, request = by_action["UPDATE"], by_action["HTTP_REQUEST"]
    assert update["object_id"] == "cus_77"
    assert update["changes"] == {"email": ["old@example.com", "new@example.com"]}
    for record in (update, request):
        assert record["ip_address"] == "203.0.113.50"
        assert record["user_agent"] == "recipe-test"
        assert record["request_id"] == "req-fastapi"
        assert record["session_key"].startswith("hmac-sha256:")
    assert request["extra"]["status_code"] == 200


def test_flask_recipe(app_env: Settings) -> None:
    module = load("flask", "recipe_flask")
    client = module.app.test_client()
    environ = {"REMOTE_ADDR": "10.0.0.9"}
    headers = {"User-Agent": "flask-test", "X-Forwarded-For": "192.0.2.44"}
    anonymous = client.post("/invoices/inv_1/void", headers=headers, environ_base=environ)
    assert anonymous.status_code == 200
    assert "Set-Cookie" not in anonymous.headers  # no cookie for an anonymous visitor
    assert client.post("/login", headers=headers, environ_base=environ).status_code == 200
    with client.session_transaction() as session:
        session["cart"] = ["sku-1"]  # the app changes its session: the cookie changes
    response = client.post("/invoices/inv_9/void", headers=headers, environ_base=environ)
    assert response.status_code == 200
    assert response.headers["X-Request-ID"]
    assert audit_logging.flush(timeout=30) == 0
    records = stream_records(app_env, app_env.rabbitmq_stream_name, 3)
    first, login, void = sorted(records, key=lambda r: r["timestamp"])
    assert (first["action"], first["object_id"]) == ("DELETE", "inv_1")
    assert first["session_key"] is None and first["user_id"] is None
    assert (login["action"], login["user_id"], login["username"]) == ("LOGIN", "u-42", "grace")
    assert (void["action"], void["object_id"]) == ("DELETE", "inv_9")
    assert (void["user_id"], void["username"]) == ("u-42", "grace")
    # One session from the login on, although Flask's cookie changed in between.
    assert login["session_key"].startswith("hmac-sha256:")
    assert void["session_key"] == login["session_key"]
    for record in records:
        assert record["ip_address"] == "192.0.2.44"
        assert record["user_agent"] == "flask-test"


class _StubUser:
    is_authenticated = True
    pk = 7

    def get_username(self) -> str:
        return "django-admin"


def stub_authentication(get_response: Any) -> Any:
    """Stands in for django.contrib.auth's middleware (which needs a database)."""
    def middleware(request: Any) -> Any:
        request.user = _StubUser()
        return get_response(request)

    return middleware


def test_django_recipe(app_env: Settings) -> None:
    from django.conf import settings as django_settings

    if not django_settings.configured:
        django_settings.configure(
            DEBUG=False, SECRET_KEY="recipe-test", ALLOWED_HOSTS=["*"],
            ROOT_URLCONF="tests.recipes.django_urls",
            MIDDLEWARE=["tests.test_readme_recipes.stub_authentication",
                        "recipe_django_middleware.audit_user"],
            INSTALLED_APPS=[],
        )
    load("django-middleware", "recipe_django_middleware")
    wsgi = load("django-wsgi", "recipe_django_wsgi")
    transport = httpx.WSGITransport(app=wsgi.application, remote_addr="198.51.100.9")
    with httpx.Client(transport=transport, base_url="http://app") as http:
        response = http.post("/orders/ord_5/refund", headers={"Cookie": "sessionid=dj-sess"})
    assert response.status_code == 200, response.text
    assert audit_logging.flush(timeout=30) == 0
    (record,) = stream_records(app_env, app_env.rabbitmq_stream_name, 1)
    assert (record["action"], record["object_id"]) == ("UPDATE", "ord_5")
    assert (record["user_id"], record["username"]) == ("7", "django-admin")
    assert record["ip_address"] == "198.51.100.9"
    assert record["session_key"].startswith("hmac-sha256:")
    assert "dj-sess" not in record["session_key"]
    _ = os, importlib
