"""The README's framework recipes, extracted from README.md and run against the real stack."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import re
import subprocess
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
REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
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
    # buffered: each response read whole and closed, as a server does (the context of the
    # request is released at close)
    options: dict[str, Any] = {
        "headers": {"User-Agent": "flask-test", "X-Forwarded-For": "192.0.2.44"},
        "environ_base": {"REMOTE_ADDR": "10.0.0.9"},
        "buffered": True,
    }
    anonymous = client.post("/invoices/inv_1/void", **options)
    assert anonymous.status_code == 200
    assert "Set-Cookie" not in anonymous.headers  # no cookie for an anonymous visitor
    assert client.post("/login", **options).status_code == 200
    with client.session_transaction() as session:
        session["cart"] = ["sku-1"]  # the app changes its session: the cookie changes
    response = client.post("/invoices/inv_9/void", **options)
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
    assert audit_logging.context.current_context() is None  # released after each request


def test_django_recipe(app_env: Settings, tmp_path: Path) -> None:
    """The README's settings block and view, in a project run by its own process: capture
    configured by the app, the login recorded, the view's record with the request's
    context, and ``manage.py check`` content."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.django_project.settings_djcore_readme",
           "DJANGO_TEST_SQLITE": str(tmp_path / "db.sqlite3"), "PYTHONPATH": str(REPO),
           "AUDIT_LOG_SOURCE": "from-the-environment"}
    check = subprocess.run(
        [sys.executable, str(REPO / "tests" / "django_project" / "manage.py"), "check"],
        env=env, capture_output=True, text=True, timeout=120, check=False)
    assert check.returncode == 0, check.stderr
    assert "System check identified no issues" in check.stdout, check.stdout + check.stderr
    drive = subprocess.run([sys.executable, "-m", "tests.recipes.django_drive"], env=env,
                           capture_output=True, text=True, timeout=120, check=False)
    assert drive.returncode == 0, drive.stderr
    out = json.loads(drive.stdout.strip().splitlines()[-1])
    assert out["status"] == [200, 200] and out["unconfirmed"] == 0, out
    assert out["request_id"] == "req-refund"

    records = stream_records(app_env, app_env.rabbitmq_stream_name, 3)
    assert [(r["action"], r["object_type"]) for r in records] == [
        ("LOGIN", "User"), ("VIEW", "Dashboard"), ("UPDATE", "Order")]
    session = "hmac-sha256:" + hmac.new(
        HASH_KEY.encode(), out["session"].encode(), hashlib.sha256).hexdigest()
    for record in records:
        assert (record["user_id"], record["username"]) == (out["user_id"], "grace")
        assert record["ip_address"] == "198.51.100.23"  # the recipe trusts 10.0.0.0/8
        assert record["user_agent"] == "readme-django"
        assert record["session_key"] == session
        # The environment wins over the recipe's AUDIT_LOGGING (it names mq.internal).
        assert record["source"] == "from-the-environment"
    update = records[2]
    assert (update["object_id"], update["request_id"]) == ("ord_5", "req-refund")
    assert update["changes"] == {"status": ["paid", "refunded"]}


def test_the_test_project_uses_the_readme_settings() -> None:
    """The README's MIDDLEWARE and LOGGING are what the in-process Django tests run with."""
    namespace: dict[str, Any] = {}
    exec(compile(recipe("django-settings"), "<README recipe django-settings>", "exec"), namespace)
    from tests.django_project import settings as project

    assert namespace["MIDDLEWARE"] == project.MIDDLEWARE
    assert namespace["LOGGING"] == project.LOGGING
    assert set(namespace["INSTALLED_APPS"]) <= set(project.INSTALLED_APPS)
