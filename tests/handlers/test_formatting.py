"""What the handler makes of a log call (no broker: the capturing transport)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import logging.config
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

import audit_logging
from audit_logging.context import RequestContext, bind_context
from audit_logging.errors import RecordError
from audit_logging.handlers import AuditHandler
from audit_logging.testing import CapturingTransport, capture_audit_records

HASH_KEY = "k" * 32


def test_seed_call_becomes_a_full_record() -> None:
    with capture_audit_records(source="billing") as records:
        logging.getLogger("audit").info(
            "Created new customer",
            extra={"action": "CREATE", "object_type": "Customer", "object_id": "cus_456",
                   "object_repr": "John Smith", "user_id": "user_123", "username": "john.doe"},
        )
    (record,) = records
    assert record["change_message"] == "Created new customer"
    assert record["action"] == "CREATE"
    assert record["object_id"] == "cus_456"
    assert record["username"] == "john.doe"
    assert record["source"] == "billing"
    assert uuid.UUID(record["log_id"]).version == 7
    assert record["schema_version"] == 1


def test_message_arguments_are_rendered_and_other_extras_kept() -> None:
    with capture_audit_records() as records:
        logging.getLogger("audit").info(
            "Refund %s of %d EUR", "r_1", 20,
            extra={"action": "UPDATE", "ticket": "T-9", "changes": {"amount": [0, 20]}},
        )
    (record,) = records
    assert record["change_message"] == "Refund r_1 of 20 EUR"
    assert record["extra"] == {"ticket": "T-9"}
    assert record["changes"] == {"amount": [0, 20]}


def test_exception_traceback_is_kept_in_extra() -> None:
    with capture_audit_records() as records:
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("audit").exception("Failed", extra={"action": "EXPORT"})
    assert "ValueError: boom" in records[0]["extra"]["exc_info"]


def test_missing_action_is_reported_on_the_library_logger_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with capture_audit_records() as records, caplog.at_level(logging.ERROR, "audit_logging"):
        logging.getLogger("audit").info("no action here", extra={"user_id": "u"})
    assert records == []
    assert any("no 'action'" in r.getMessage() and r.name == "audit_logging"
               for r in caplog.records)


def test_non_serialisable_extra_is_reported_and_the_app_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Opaque:
        pass

    with capture_audit_records() as records, caplog.at_level(logging.WARNING, "audit_logging"):
        logging.getLogger("audit").info("x", extra={"action": "CREATE", "extra": {"o": Opaque()}})
        logging.getLogger("audit").info("y", extra={"action": "CREATE"})
    assert len(records) == 2
    assert "Opaque" in records[0]["extra"]["o"]
    assert any("extra.o" in r.getMessage() for r in caplog.records)


def test_one_megabyte_message_is_truncated_and_marked() -> None:
    with capture_audit_records() as records:
        logging.getLogger("audit").info("m" * 1_000_000, extra={"action": "CREATE"})
    assert len(records[0]["change_message"]) == 8192
    assert records[0]["truncated"] == ["change_message"]


def test_control_characters_cannot_forge_a_second_record() -> None:
    evil = 'x"}\n{"action":"DELETE","user_id":"admin"}\r\x00'
    with capture_audit_records() as records:
        logging.getLogger("audit").info(evil, extra={"action": "LOGIN", "username": evil})
        (handler,) = logging.getLogger("audit").handlers
        assert isinstance(handler, AuditHandler)
        assert isinstance(handler.transport, CapturingTransport)
        (body,) = handler.transport.bodies
    assert b"\n" not in body
    assert b"\r" not in body
    assert b"\x00" not in body
    assert len(records) == 1
    assert records[0]["action"] == "LOGIN"
    assert records[0]["username"] == evil
    assert records[0]["change_message"] == evil


def test_request_context_fills_what_the_call_left_out() -> None:
    context = RequestContext(ip_address="203.0.113.9", user_agent="UA/1", request_id="req-1",
                             user_id="u-ctx", username="ctx-name")
    with capture_audit_records() as records, bind_context(context):
        logging.getLogger("audit").info("a", extra={"action": "VIEW"})
        logging.getLogger("audit").info("b", extra={"action": "VIEW", "user_id": "explicit"})
    first, second = records
    assert (first["ip_address"], first["user_agent"], first["request_id"]) == (
        "203.0.113.9", "UA/1", "req-1")
    assert (first["user_id"], first["username"]) == ("u-ctx", "ctx-name")
    assert second["user_id"] == "explicit"


def test_a_user_agent_the_middleware_cut_stays_listed_when_the_call_cuts_too() -> None:
    context = RequestContext(ip_address="203.0.113.9", user_agent="A" * 1024)
    context.truncated.append("user_agent")  # what the middleware does for a longer one
    with capture_audit_records() as records, bind_context(context):
        logging.getLogger("audit").info("plain", extra={"action": "VIEW"})
        logging.getLogger("audit").info("cut", extra={"action": "VIEW", "ids": [0] * 6000})
        logging.getLogger("audit").info("own", extra={"action": "VIEW", "user_agent": "mine"})
    plain, cut, own = records
    assert plain["truncated"] == ["user_agent"]
    assert sorted(cut["truncated"]) == ["extra", "user_agent"]
    assert own["truncated"] == []


def test_caller_session_key_is_hashed_by_default() -> None:
    with capture_audit_records(hash_key=HASH_KEY) as records:
        logging.getLogger("audit").info("x", extra={"action": "LOGIN", "session_key": "raw-s"})
        audit_logging.log_audit_event(action="LOGIN", session_key="raw-s")
    for record in records:
        assert record["session_key"].startswith("hmac-sha256:")
        assert "raw-s" not in json.dumps(record)
    assert records[0]["session_key"] == records[1]["session_key"]


@pytest.mark.parametrize(("mode", "expected"), [("raw", "raw-s"), ("drop", None)])
def test_session_key_modes(mode: str, expected: str | None) -> None:
    with capture_audit_records(session_key_mode=mode) as records:
        audit_logging.log_audit_event(action="LOGIN", session_key="raw-s")
    assert records[0]["session_key"] == expected


def test_session_key_without_hash_key_is_refused_by_log_audit_event() -> None:
    with capture_audit_records(), pytest.raises(RecordError, match="AUDIT_LOG_HASH_KEY"):
        audit_logging.log_audit_event(action="LOGIN", session_key="raw-s")


def test_log_audit_event_returns_the_log_id_and_raises_on_bad_input() -> None:
    with capture_audit_records() as records:
        log_id = audit_logging.log_audit_event(action="DELETE", object_type="Invoice",
                                               object_id=7, changes={"paid": [True, False]})
        with pytest.raises(RecordError, match="action"):
            audit_logging.log_audit_event(object_type="Invoice")
        with pytest.raises(RecordError, match="colour"):
            audit_logging.log_audit_event(action="DELETE", colour="red")
        with pytest.raises(RecordError, match="username"):
            audit_logging.log_audit_event(action="DELETE", username=["a"])
    assert [r["log_id"] for r in records] == [log_id]
    assert records[0]["object_id"] == "7"


def test_records_from_our_own_and_transport_loggers_are_ignored() -> None:
    handler = AuditHandler(transport_factory=CapturingTransport, env_file=None)
    transport = handler.transport
    assert isinstance(transport, CapturingTransport)
    for name in ("audit_logging.publisher", "rstream.producer", "botocore.hooks", "urllib3"):
        record = logging.LogRecord(name, logging.INFO, __file__, 1, "m", None, None)
        record.action = "CREATE"
        handler.handle(record)
    assert transport.records == []


def test_dict_config_builds_the_handler_with_settings(tmp_path: Any) -> None:
    logging.config.dictConfig({
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"audit": {
            "class": "audit_logging.handlers.AuditHandler",
            "rabbitmq_stream_name": "from_dictconfig",
            "spool_dir": str(tmp_path),
            "env_file": None,
        }},
        "loggers": {"audit": {"handlers": ["audit"], "level": "INFO"}},
    })
    (handler,) = logging.getLogger("audit").handlers
    assert isinstance(handler, AuditHandler)
    assert handler.settings.rabbitmq_stream_name == "from_dictconfig"
    assert handler.close(timeout=0.1) == 0


def _nested(depth: int) -> dict[str, Any]:
    deep: dict[str, Any] = {}
    for _ in range(depth):
        deep = {"a": deep}
    return deep


class _UnreadableMapping(Mapping[str, Any]):
    def __getitem__(self, key: str) -> Any:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("cannot iterate")

    def __len__(self) -> int:
        return 1


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"timestamp": dt.datetime.max.replace(tzinfo=dt.UTC)}, "timestamp"),
        ({"timestamp": dt.datetime.max.replace(tzinfo=dt.timezone(-dt.timedelta(hours=1)))},
         "timestamp"),
        ({"timestamp": dt.datetime.min.replace(tzinfo=dt.timezone(dt.timedelta(hours=1)))},
         "timestamp"),
        ({"timestamp": "9999-12-31T23:59:59-01:00"}, "timestamp"),
        ({"timestamp": float("1e400")}, "timestamp"),
        ({"timestamp": 10**400}, "timestamp"),
        ({"extra": {"x": float("1e400")}}, "extra.x"),
        ({"extra": {"x": 10**5000}}, "extra.x"),
        ({"user_id": 10**5000}, "user_id"),
        ({"changes": {"n": [0, 10**5000]}}, "changes.n[1]"),
        ({"extra": _nested(1_000)}, "extra.a"),
        ({"extra": _UnreadableMapping()}, "extra"),
        ({"changes": {"f": [_UnreadableMapping(), None]}}, "changes.f[0]"),
    ],
)
def test_log_audit_event_raises_record_error_only(fields: dict[str, Any], field: str) -> None:
    with capture_audit_records() as records, pytest.raises(RecordError) as raised:
        audit_logging.log_audit_event(action="UPDATE", **fields)
    assert type(raised.value) is RecordError
    assert raised.value.field.startswith(field)
    assert records == []


def test_log_audit_event_keeps_the_values_of_the_call() -> None:
    changes = {"email": ["a@x.example", "b@x.example"]}
    with capture_audit_records() as records:
        audit_logging.log_audit_event(action="UPDATE", changes=changes)
        changes["email"][1] = "mutated"
    assert records[0]["changes"] == {"email": ["a@x.example", "b@x.example"]}


def test_a_value_python_cannot_convert_refuses_the_log_call_with_a_message(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    with capture_audit_records() as records, caplog.at_level(logging.WARNING, "audit_logging"):
        logging.getLogger("audit").info("t", extra={"action": "X", "timestamp": 10**400})
        logging.getLogger("audit").info("t", extra={"action": "X", "object_id": 10**5000})
    # A timestamp out of range is repaired like any other bad timestamp (the time of the
    # call stands in, and the repair is reported); the huge id is kept as a short text.
    repaired, huge = records
    assert repaired["timestamp"].startswith(str(dt.datetime.now(dt.UTC).year))
    assert huge["object_id"] == "<int of 16610 bits>"
    messages = [r.getMessage() for r in caplog.records]
    assert any("timestamp" in m and "repaired" in m for m in messages), messages
    assert not any(r.exc_info for r in caplog.records)
    assert capfd.readouterr().err == ""
