"""The records of model changes: one per row, or one summary for a bulk write over the
limit."""

from __future__ import annotations

from typing import Any

from django.db import models

from audit_logging.contrib.django.changes import Rendering
from audit_logging.contrib.django.commit import Event
from audit_logging.contrib.django.registry import Registration

_VERBS = {"CREATE": "Created", "UPDATE": "Changed", "DELETE": "Deleted"}
# object_repr holds 1,024 characters; one more lets the record mark it as cut.
_REPR_LIMIT = 1025


def row_event(
    entry: Registration,
    action: str,
    *,
    pk: Any,
    shown: str | None,
    changes: dict[str, Any],
    rendering: Rendering,
    extra: dict[str, Any] | None = None,
) -> Event:
    """One row's record: ``shown`` is the object's ``str()`` read when it changed."""
    message = _VERBS[action]
    if action == "UPDATE" and changes:
        message = f"Changed {', '.join(changes)}"[:1000]
    event: Event = {
        "action": action,
        "object_type": entry.label,
        "object_id": None if pk is None else str(pk),
        "object_repr": shown,
        "change_message": message,
    }
    if changes:
        event["changes"] = changes
    if rendering.cut:
        # Values cut to their limit: the record says which, as it does for its own cuts.
        event["truncated"] = ["changes"]
        extra = {**(extra or {}), "cut_values": list(rendering.cut)}
    if extra:
        event["extra"] = extra
    return event


def summary_event(
    entry: Registration, action: str, *, operation: str, count: int, where: str, limit: int
) -> Event:
    """One record standing for ``count`` rows of a bulk write over ``BULK_ROW_LIMIT``."""
    return {
        "action": action,
        "object_type": entry.label,
        "object_repr": f"{count} {entry.label} rows",
        "change_message": (
            f"{operation} of {count} {entry.label} rows (over BULK_ROW_LIMIT {limit})"
        )[:1000],
        "extra": {"bulk": operation, "count": count, "filter": where, "row_limit": limit},
    }


def object_repr(instance: models.Model) -> str:
    try:
        return str(instance)[:_REPR_LIMIT]
    except Exception:  # noqa: BLE001 - an app's __str__ must not break its save
        return f"{instance._meta.label} object ({instance.pk})"
