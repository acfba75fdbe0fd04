"""A registered model's saves and deletes, from Django's model signals.

Old values: ``pre_save`` reads the row from the database (one query by primary key, only
the tracked fields, only the fields in ``update_fields`` when given, none for a new object
without a primary key or whose key has a default) as django-auditlog does. A snapshot taken
when the object was loaded would cost something on every object every query loads, most of
which are never saved, and would be wrong for an object built by hand with an existing key
or loaded long before.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import models
from django.db.models import signals

from audit_logging.contrib.django import m2m
from audit_logging.contrib.django.changes import Rendering
from audit_logging.contrib.django.commit import Event, record_on_commit
from audit_logging.contrib.django.events import object_repr, row_event
from audit_logging.contrib.django.registry import Registration, registration
from audit_logging.contrib.django.rows import stored_values

# Where pre_save leaves the row as it was, for post_save (popped there).
_OLD_ROW = "_audit_logging_old_row"


class DeleteScope:
    """The deletes of one ``QuerySet.delete()``, cascades included, held until it returns so
    that a model over the row limit gets one summary record instead (see :mod:`.bulk`)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.counts: dict[type[models.Model], int] = {}
        # Up to the limit per model: past it only the count is kept.
        self.events: dict[type[models.Model], list[Event]] = {}
        self.using: str | None = None


_delete_scope: contextvars.ContextVar[DeleteScope | None] = contextvars.ContextVar(
    "audit_logging_delete_scope", default=None
)


@contextmanager
def collecting_deletes(limit: int) -> Iterator[DeleteScope]:
    scope = DeleteScope(limit)
    token = _delete_scope.set(scope)
    try:
        yield scope
    finally:
        _delete_scope.reset(token)


def connect(model: type[models.Model]) -> None:
    """Listen to ``model``'s signals, and to those of its proxy models (Django sends a proxy
    instance's signals with the proxy as sender)."""
    for sender in (model, *proxies_of(model)):
        _connect(sender)


def disconnect(model: type[models.Model]) -> None:
    for sender in (model, *proxies_of(model)):
        uid = _uid(sender)
        signals.pre_save.disconnect(sender=sender, dispatch_uid=f"{uid}:pre_save")
        signals.post_save.disconnect(sender=sender, dispatch_uid=f"{uid}:post_save")
        signals.post_delete.disconnect(sender=sender, dispatch_uid=f"{uid}:post_delete")


def _connect(sender: type[models.Model]) -> None:
    # Per sender, never for every model: a post_delete receiver for a model makes Django
    # load its rows before deleting them (no fast delete), a cost only registered models pay.
    uid = _uid(sender)
    signals.pre_save.connect(_pre_save, sender=sender, dispatch_uid=f"{uid}:pre_save")
    signals.post_save.connect(_post_save, sender=sender, dispatch_uid=f"{uid}:post_save")
    signals.post_delete.connect(_post_delete, sender=sender, dispatch_uid=f"{uid}:post_delete")


def proxies_of(model: type[models.Model]) -> list[type[models.Model]]:
    """The proxy models of ``model`` loaded so far (those loaded later: ``_class_prepared``)."""
    from django.apps import apps

    if not apps.models_ready:
        return []
    return [m for m in apps.get_models() if m._meta.proxy and m._meta.concrete_model is model]


def _class_prepared(sender: type[models.Model], **kwargs: Any) -> None:
    if sender._meta.proxy and registration(sender) is not None:
        from audit_logging.contrib.django import bulk

        _connect(sender)
        bulk.audit_managers(sender)


signals.class_prepared.connect(_class_prepared, dispatch_uid="audit_logging:class_prepared")
m2m.connect()


def _uid(model: type[models.Model]) -> str:
    return f"audit_logging:{model._meta.label}"


def _pre_save(
    sender: type[models.Model],
    instance: models.Model,
    using: str,
    update_fields: frozenset[str] | None = None,
    **kwargs: Any,
) -> None:
    entry = registration(sender)
    if entry is None:
        return
    instance.__dict__.pop(_OLD_ROW, None)
    pk = sender._meta.pk
    if instance.pk is None or (instance._state.adding and pk is not None and pk.has_default()):
        return  # a new row: Django inserts it without looking (a UUID key's default, say)
    fields = entry.tracked.only(update_fields)
    if not fields:
        return
    instance.__dict__[_OLD_ROW] = stored_values(sender, fields, instance.pk, using)


def _post_save(
    sender: type[models.Model],
    instance: models.Model,
    created: bool,
    using: str,
    update_fields: frozenset[str] | None = None,
    **kwargs: Any,
) -> None:
    entry = registration(sender)
    old = instance.__dict__.pop(_OLD_ROW, None)
    if entry is None:
        return
    fields = entry.tracked.only(update_fields)
    if not created and not fields:
        return  # only fields that are not recorded were saved
    new = current_row(instance, fields)
    rendering = Rendering(entry.tracked)
    if created or old is None:
        event = row_event(
            entry, "CREATE" if created else "UPDATE", pk=instance.pk, shown=object_repr(instance),
            changes=rendering.created(fields, new), rendering=rendering,
        )
    else:
        changes = rendering.changed(fields, old, new)
        if not changes:
            return
        event = row_event(
            entry, "UPDATE", pk=instance.pk, shown=object_repr(instance), changes=changes,
            rendering=rendering,
        )
    record_on_commit([event], using)


def _post_delete(
    sender: type[models.Model], instance: models.Model, using: str, **kwargs: Any
) -> None:
    entry = registration(sender)
    if entry is None:
        return
    scope = _delete_scope.get()
    if scope is None:
        record_on_commit([deleted_event(entry, instance)], using)
        return
    scope.using = using
    count = scope.counts[sender] = scope.counts.get(sender, 0) + 1
    if count <= scope.limit:
        scope.events.setdefault(sender, []).append(deleted_event(entry, instance))


def deleted_event(entry: Registration, instance: models.Model, **extra: Any) -> Event:
    rendering = Rendering(entry.tracked)
    old = current_row(instance, entry.tracked.fields)
    return row_event(
        entry, "DELETE", pk=instance.pk, shown=object_repr(instance),
        changes=rendering.deleted(entry.tracked.fields, old), rendering=rendering,
        extra=extra or None,
    )


def current_row(instance: models.Model, fields: Any) -> dict[str, Any]:
    """The instance's values of ``fields`` as it holds them; deferred fields (never loaded,
    so never saved) are left out rather than loaded one query each."""
    held = instance.__dict__
    return {f.attname: held[f.attname] for f in fields if f.attname in held}
