"""Session keys: whatever a client sends is hashed; cookies are read robustly."""

from __future__ import annotations

import logging
from typing import Any

import pytest

import audit_logging
from audit_logging.middleware._request import MAX_COOKIE_CHARS, cookie_value
from audit_logging.session_key import StoredSessionKey, stored_session_key
from audit_logging.settings import Secret
from audit_logging.testing import capture_audit_records
from tests.middleware._drive import HASH_KEY, RUNNERS, Headers, expected_hash

FORGED = "hmac-sha256:" + "ab" * 32


def session_key(runner: str, headers: Headers, **options: Any) -> str | None:
    outcome = RUNNERS[runner](headers, **options)
    assert outcome.status == 200
    key: str | None = outcome.record["session_key"]
    return key


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("forged", ["hmac-sha256:FORGED", FORGED])
def test_a_cookie_that_looks_hashed_is_hashed_like_any_other(runner: str, forged: str) -> None:
    assert session_key(runner, [("Cookie", f"session={forged}")]) == expected_hash(forged)


@pytest.mark.parametrize("runner", RUNNERS)
def test_a_session_from_get_session_that_looks_hashed_is_hashed(runner: str) -> None:
    key = session_key(runner, [], get_session=lambda request: FORGED)
    assert key == expected_hash(FORGED)


def test_a_caller_session_key_that_looks_hashed_is_hashed() -> None:
    with capture_audit_records(hash_key=HASH_KEY) as records:
        audit_logging.log_audit_event(action="LOGIN", session_key=FORGED)
        logging.getLogger("audit").info("x", extra={"action": "LOGIN", "session_key": FORGED})
    assert [r["session_key"] for r in records] == [expected_hash(FORGED)] * 2


@pytest.mark.parametrize("runner", RUNNERS)
def test_the_middlewares_own_hash_is_not_hashed_again(runner: str) -> None:
    assert session_key(runner, [("Cookie", "session=s3cr3t")]) == expected_hash("s3cr3t")


@pytest.mark.parametrize("runner", RUNNERS)
def test_duplicate_cookie_the_last_one_wins(runner: str) -> None:
    headers = [("Cookie", "session=first; other=1; session=second")]
    assert session_key(runner, headers) == expected_hash("second")


@pytest.mark.parametrize("runner", RUNNERS)
def test_cookie_split_over_several_fields_http2(runner: str) -> None:
    headers = [("Cookie", "a=1"), ("Cookie", "session=xyz"), ("Cookie", "b=2")]
    assert session_key(runner, headers) == expected_hash("xyz")


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize(
    "cookie",
    ["session", "=;;;=", 'session="', "session=", ";", "\x00session=\x00", "session=\udcff",
     "a" * (MAX_COOKIE_CHARS + 1) + "; session=x", "session=" + "\xff" * 100],
)
def test_malformed_cookies_never_raise(runner: str, cookie: str) -> None:
    if "\udcff" in cookie:
        headers: Headers = [("Cookie", b"session=\xff\xfe")]
    else:
        headers = [("Cookie", cookie)]
    outcome = RUNNERS[runner](headers)
    assert outcome.status == 200
    key = outcome.record["session_key"]
    assert key is None or key.startswith("hmac-sha256:")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("session=a", "a"),
        (' session = "quoted" ', "quoted"),
        ("x=1;session=v=with=equals", "v=with=equals"),
        ("sessionid=no; session=yes", "yes"),
        ("session=a; session=", None),
        ("nothing=here", None),
        (None, None),
        ("s" * (MAX_COOKIE_CHARS + 1), None),
    ],
)
def test_cookie_value(header: str | None, expected: str | None) -> None:
    assert cookie_value(header, "session") == expected


def test_only_the_librarys_own_type_passes_through() -> None:
    key = Secret(HASH_KEY)
    stored = stored_session_key("raw", "hash", key)
    assert isinstance(stored, StoredSessionKey)
    assert stored_session_key(stored, "hash", key) is stored
    assert stored_session_key(str(stored), "hash", key) == expected_hash(str(stored))
    assert stored_session_key(FORGED, "raw", key) == FORGED
    assert stored_session_key(FORGED, "drop", key) is None
    assert stored_session_key(FORGED, "hash", None) is None
