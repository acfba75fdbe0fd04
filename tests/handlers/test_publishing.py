"""The handler and its publisher against the real RabbitMQ stream."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import logging.config
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import audit_logging
from audit_logging.handlers import AuditHandler
from audit_logging.middleware import AuditWSGIMiddleware
from audit_logging.settings import Settings
from tests._ports import free_port
from tests._stack import stream_records
from tests.handlers._processes import REPO, app_env
from tests.handlers._records import audit_record
from tests.middleware._apps import starlette_app, wsgi_app

pytestmark = pytest.mark.services


@pytest.fixture
def handler(settings: Settings) -> Iterator[AuditHandler]:
    handler = AuditHandler(settings=settings)
    audit = logging.getLogger("audit")
    audit.addHandler(handler)
    audit.setLevel(logging.INFO)
    audit.propagate = False
    yield handler
    handler.close(timeout=10)


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["bash", str(REPO / "devstack" / "rabbitmq.sh"), "ctl", *args],
                   check=True, capture_output=True, timeout=120)


def test_ten_thousand_records_arrive_once_each_with_every_field_intact(
    handler: AuditHandler, settings: Settings
) -> None:
    audit = logging.getLogger("audit")
    for i in range(10_000):
        audit.info(
            "Changed customer %d", i,
            extra={"action": "UPDATE", "object_type": "Customer", "object_id": f"cus_{i}",
                   "object_repr": f"Customer №{i}", "user_id": f"user_{i % 7}",
                   "username": "jöhn.doe", "changes": {"email": [f"{i}@a.example", None]},
                   "ip_address": "2001:db8::1", "request_id": f"req-{i}",
                   "extra": {"seq": i}},
        )
    assert handler.flush(timeout=60) == 0
    records = stream_records(settings, settings.rabbitmq_stream_name, 10_000)
    assert len(records) == 10_000
    assert len({r["log_id"] for r in records}) == 10_000
    assert [r["extra"]["seq"] for r in records] == list(range(10_000))
    sample = records[1234]
    assert sample == sample | {
        "action": "UPDATE", "object_type": "Customer", "object_id": "cus_1234",
        "object_repr": "Customer №1234", "user_id": "user_2", "username": "jöhn.doe",
        "change_message": "Changed customer 1234", "changes": {"email": ["1234@a.example", None]},
        "ip_address": "2001:db8::1", "request_id": "req-1234", "schema_version": 1,
        "truncated": [],
    }
    assert handler.stats()["published"] == 10_000


def test_asgi_and_wsgi_request_records_reach_the_stream_with_their_context(
    handler: AuditHandler, settings: Settings
) -> None:
    app_settings = dataclasses.replace(settings, hash_key=settings.hash_key)
    asgi = starlette_app(settings=app_settings, trusted_proxies=["10.0.0.0/8"])
    wsgi = AuditWSGIMiddleware(wsgi_app, settings=app_settings,
                               get_user=lambda environ: ("u-w", "wanda"))

    async def asgi_call() -> None:
        transport = httpx.ASGITransport(app=asgi, client=("198.51.100.20", 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            await http.post("/customers/cus_9", headers={
                "User-Agent": "UA-asgi", "Cookie": "session=s-asgi", "X-Request-ID": "r-asgi",
                "X-Forwarded-For": "6.6.6.6", "X-User": "u-a:alice"})

    asyncio.run(asgi_call())
    with httpx.Client(transport=httpx.WSGITransport(app=wsgi, remote_addr="198.51.100.21"),
                      base_url="http://t") as http:
        http.get("/reports/r1", headers={"User-Agent": "UA-wsgi", "Cookie": "session=s-wsgi",
                                         "X-Request-ID": "r-wsgi"})
    assert handler.flush(timeout=30) == 0
    records = stream_records(settings, settings.rabbitmq_stream_name, 3)
    by_request = {r["request_id"]: r for r in records}
    asgi_record, wsgi_record = by_request["r-asgi"], by_request["r-wsgi"]
    assert asgi_record["ip_address"] == "198.51.100.20"  # the spoofed header was ignored
    assert (asgi_record["user_agent"], asgi_record["user_id"], asgi_record["username"]) == (
        "UA-asgi", "u-a", "alice")
    assert (wsgi_record["ip_address"], wsgi_record["user_agent"], wsgi_record["username"]) == (
        "198.51.100.21", "UA-wsgi", "wanda")
    for record, raw in ((asgi_record, "s-asgi"), (wsgi_record, "s-wsgi")):
        assert record["session_key"].startswith("hmac-sha256:")
        assert raw not in record["session_key"]


def test_broker_outage_loses_nothing_duplicates_nothing_and_never_blocks_emit(
    settings: Settings,
) -> None:
    app = subprocess.run([sys.executable, "-m", "tests.handlers._outage_app"],
                         env=app_env(settings), cwd=REPO, capture_output=True, text=True,
                         timeout=400, check=False)
    assert app.returncode == 0, app.stderr
    seen = json.loads(app.stdout)
    assert seen["stopped"], "the broker did not stop"
    assert seen["outage_rc"] == 0
    assert seen["left"] == 0
    assert seen["stats"]["spooled"] > 0, "the outage should have sent records to the spool"
    records = stream_records(settings, settings.rabbitmq_stream_name, 20_000, timeout=120)
    ids = [r["object_id"] for r in records]
    assert len(ids) == 20_000, f"{len(ids)} messages in the stream"
    assert sorted(map(int, ids)) == list(range(20_000))
    assert seen["waits"] == [], f"emit waited during the outage: {seen}"


def test_flush_and_shutdown_deliver_everything_pending(settings: Settings) -> None:
    handler = AuditHandler(settings=settings)
    logging.getLogger("audit").addHandler(handler)
    logging.getLogger("audit").setLevel(logging.INFO)
    for i in range(3_000):
        logging.getLogger("audit").info("x", extra={"action": "CREATE", "object_id": str(i)})
    assert handler.close(timeout=60) == 0
    records = stream_records(settings, settings.rabbitmq_stream_name, 3_000)
    assert len(records) == 3_000
    assert not any(Path(settings.spool_dir).iterdir()), "an empty spool folder is removed"


def test_a_forked_child_publishes_with_its_own_producer(
    handler: AuditHandler, settings: Settings, tmp_path: Path
) -> None:
    audit = logging.getLogger("audit")
    audit.info("parent before fork", extra={"action": "CREATE", "object_id": "p0"})
    assert handler.flush(timeout=30) == 0
    report = tmp_path / "child.txt"
    pid = os.fork()
    if pid == 0:  # the child: log, drain, and say how it went
        code = 1
        try:
            for i in range(500):
                audit.info("child", extra={"action": "CREATE", "object_id": f"c{i}"})
            left = handler.close(timeout=30)
            report.write_text(f"left={left} stats={handler.stats()}")
            code = 0 if left == 0 else 2
        finally:
            os._exit(code)
    for i in range(500):
        audit.info("parent", extra={"action": "CREATE", "object_id": f"p{i + 1}"})
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, report.read_text()
    assert handler.flush(timeout=30) == 0
    records = stream_records(settings, settings.rabbitmq_stream_name, 1_001)
    ids = sorted(r["object_id"] for r in records)
    assert ids == sorted([f"p{i}" for i in range(501)] + [f"c{i}" for i in range(500)])


def test_spool_left_by_a_process_is_replayed_by_the_next_one(settings: Settings) -> None:
    script = (
        "import logging, sys\n"
        "from audit_logging.handlers import AuditHandler\n"
        "from audit_logging.settings import Settings\n"
        "h = AuditHandler(settings=Settings.load(env_file=None))\n"
        "log = logging.getLogger('audit'); log.addHandler(h); log.setLevel(logging.INFO)\n"
        "for i in range(1500):\n"
        "    log.info('offline', extra={'action': 'CREATE', 'object_id': str(i)})\n"
        "left = h.close(timeout=1)\n"
        "sys.exit(0 if left == 1500 else 3)\n"
    )
    unreachable = app_env(settings, port=free_port())
    done = subprocess.run([sys.executable, "-c", script], env=unreachable, cwd=REPO, timeout=60,
                          check=False, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "kept in the spool" in done.stderr
    # A new process (here: a new handler) with the same spool folder adopts and sends it.
    handler = AuditHandler(settings=settings)
    handler.emit(audit_record("trigger"))
    deadline = time.monotonic() + 60
    while any(p.name.startswith("audit-") for p in Path(settings.spool_dir).iterdir()) and (
        time.monotonic() < deadline
    ):
        if len(list(Path(settings.spool_dir).iterdir())) == 1 and handler.flush(0.5) == 0:
            break
        time.sleep(0.2)
    assert handler.close(timeout=30) == 0
    records = stream_records(settings, settings.rabbitmq_stream_name, 1_501)
    ids = sorted(r["object_id"] for r in records)
    assert ids == sorted([str(i) for i in range(1500)] + ["trigger"])
    assert list(Path(settings.spool_dir).iterdir()) == []


def test_unwritable_spool_and_no_broker_is_reported_and_counted(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the spool folder should be")
    broken = dataclasses.replace(settings, spool_dir=blocker / "spool",
                                 rabbitmq_stream_port=free_port())
    handler = AuditHandler(settings=broken)
    with caplog.at_level(logging.ERROR, "audit_logging"):
        for i in range(10):
            handler.emit(audit_record(str(i)))
        handler.flush(timeout=1)
        handler.close(timeout=1)
    assert handler.stats()["lost"] == 10
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "AUDIT_LOG_SPOOL_DIR" in messages
    assert "could not be kept" in messages


def test_log_audit_event_reaches_the_stream(handler: AuditHandler, settings: Settings) -> None:
    log_id = audit_logging.log_audit_event(action="LOGIN", user_id="u1", username="ann")
    assert audit_logging.flush(timeout=30) == 0
    (record,) = stream_records(settings, settings.rabbitmq_stream_name, 1)
    assert (record["log_id"], record["action"], record["username"]) == (log_id, "LOGIN", "ann")


def test_a_handler_closed_by_a_later_dict_config_keeps_publishing(
    handler: AuditHandler, settings: Settings
) -> None:
    audit = logging.getLogger("audit")
    audit.info("before", extra={"action": "CREATE", "object_id": "1"})
    # As Django's setup does after configure(): every existing handler is closed, the
    # audit logger (not named in the new config) keeps its handler.
    logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})
    assert handler in audit.handlers
    audit.info("after", extra={"action": "CREATE", "object_id": "2"})
    assert handler.flush(timeout=30) == 0
    records = stream_records(settings, settings.rabbitmq_stream_name, 2)
    assert sorted(r["object_id"] for r in records) == ["1", "2"]
    assert handler.stats()["lost"] == 0
