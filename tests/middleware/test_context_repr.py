"""A request context in a log line or a traceback never shows the session key."""

from __future__ import annotations

from audit_logging.context import RequestContext


def test_the_session_key_stays_out_of_the_repr() -> None:
    context = RequestContext(ip_address="203.0.113.9", session_key="raw-session-key-1234")
    assert "raw-session-key-1234" not in repr(context)
    assert "203.0.113.9" in repr(context)
    assert context.fields()["session_key"] == "raw-session-key-1234"
