"""Model-change records leave when their transaction commits.

A change is recorded in a callback given to ``transaction.on_commit`` for the database the
write went to: a rolled-back transaction, or a rolled-back savepoint inside one, drops the
callback and nothing is recorded. With ``RECORD_ROLLED_BACK`` the attempt is recorded anyway,
marked ``"rolled_back": true``: Django has no rollback hook, but it drops the callbacks it
will not run, so a callback collected without having run is one whose writes rolled back.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import transaction
from django.db.transaction import TransactionManagementError

from audit_logging.capture import log_audit_event
from audit_logging.context import RequestContext, bind_context, current_context
from audit_logging.contrib.django.conf import django_option

_logger = logging.getLogger("audit_logging.contrib.django")

# One record's keyword arguments for log_audit_event.
Event = dict[str, Any]


class _Batch:
    """Records waiting for one commit, with the request they were made in."""

    __slots__ = ("context", "events", "sent")

    def __init__(self, events: list[Event], context: RequestContext | None) -> None:
        self.events = events
        self.context = context
        self.sent = False


class _OnCommit:
    """The callback Django keeps until commit (and drops at rollback)."""

    __slots__ = ("__weakref__", "batch")

    def __init__(self, batch: _Batch) -> None:
        self.batch = batch

    def __call__(self) -> None:
        self.batch.sent = True
        send(self.batch, rolled_back=False)


def record_on_commit(events: list[Event], using: str) -> None:
    """Record ``events`` once the current transaction on ``using`` commits (now, outside
    a transaction)."""
    if not events:
        return
    batch = _Batch(events, current_context())
    callback = _OnCommit(batch)
    if django_option("RECORD_ROLLED_BACK"):
        finalizer = weakref.finalize(callback, _rolled_back, batch)
        finalizer.atexit = False
    try:
        transaction.on_commit(callback, using=using)
    except TransactionManagementError:
        # Manual transaction management (autocommit off, no atomic block): Django cannot say
        # when it commits; the change is recorded now rather than never.
        callback()


def record_rolled_back(events: list[Event]) -> None:
    """Record ``events`` of a write that failed, marked rolled back, if ``RECORD_ROLLED_BACK``
    asks for them (else they are dropped, as the write was)."""
    if events and django_option("RECORD_ROLLED_BACK"):
        send(_Batch(events, current_context()), rolled_back=True)


def _rolled_back(batch: _Batch) -> None:
    if not batch.sent:
        batch.sent = True
        send(batch, rolled_back=True)


def send(batch: _Batch, *, rolled_back: bool) -> None:
    """Hand each record to capture; a record that fails is reported, never raised into the
    app's commit."""
    with _bound(batch.context):
        for given in batch.events:
            event = given
            if rolled_back:
                event = {**given, "extra": {**(given.get("extra") or {}), "rolled_back": True}}
            try:
                log_audit_event(**event)
            except Exception as exc:  # noqa: BLE001 - the app's commit already happened
                _logger.warning(
                    "Model change record for %s %s not recorded: %s",
                    event.get("object_type"),
                    event.get("object_id"),
                    type(exc).__name__,
                )


@contextmanager
def _bound(context: RequestContext | None) -> Iterator[None]:
    # The request the change was made in, also when the commit runs outside it.
    if context is None or context is current_context():
        yield
        return
    with bind_context(context):
        yield
