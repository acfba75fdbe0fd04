"""Many-to-many changes of registered models (``add``, ``remove``, ``clear``, ``set``), from
``m2m_changed``, recorded on each registered side.

``customer.tags.add(t1, t2)`` changes the customer's ``tags`` and, seen from the other side,
each tag's ``customers``: a registered Customer gets one UPDATE with ``changes`` holding
``{"tags": [before, after]}`` (sorted primary keys); a registered Tag gets one UPDATE per tag
with ``{"customers": [before, after]}``. The sets before are read in ``pre_*`` (one query per
side), the records sent after ``post_*``, when the transaction commits.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Any

from django.db import models
from django.db.models import signals

from audit_logging.contrib.django.changes import Rendering, json_value, sorted_keys
from audit_logging.contrib.django.commit import Event, record_on_commit
from audit_logging.contrib.django.conf import django_option
from audit_logging.contrib.django.events import object_repr, row_event, summary_event
from audit_logging.contrib.django.registry import Registration, has_registrations, registration

_PLAN = "_audit_logging_m2m_plan"


@dataclasses.dataclass(frozen=True)
class _Side:
    """One side of a many-to-many relation as seen through its table."""

    model: type[models.Model]
    name: str  # the relation's name on this side (field name or reverse accessor)
    column: str  # the through table's column pointing at this side
    index: int  # this side's position in a (source, target) pair


def connect() -> None:
    """Listen to every many-to-many change (once): a relation's table may be built after its
    models are registered, and a change of an unregistered relation costs one dict lookup."""
    signals.m2m_changed.connect(_m2m_changed, dispatch_uid="audit_logging:m2m")


_fields: dict[type[models.Model], Any] = {}


def _field_of(through: type[models.Model]) -> Any:
    """The ManyToManyField whose table ``through`` is."""
    if through not in _fields:
        _fields[through] = _find_field(through)
    return _fields[through]


def _find_field(through: type[models.Model]) -> Any:
    for field in through._meta.fields:
        target: Any = field.related_model if isinstance(field, models.ForeignKey) else None
        for candidate in target._meta.many_to_many if target is not None else ():
            if candidate.remote_field.through is through:
                return candidate
    return None


def _sides(field: Any) -> tuple[_Side, _Side]:
    through: Any = field.remote_field.through
    source_column = through._meta.get_field(field.m2m_field_name()).attname
    target_column = through._meta.get_field(field.m2m_reverse_field_name()).attname
    accessor = field.remote_field.get_accessor_name() or field.remote_field.name
    return (
        _Side(field.model, field.name, source_column, 0),
        _Side(field.related_model, accessor, target_column, 1),
    )


def _m2m_changed(
    sender: type[models.Model],
    instance: models.Model,
    *,
    action: str,
    reverse: bool,
    pk_set: set[Any] | None,
    using: str,
    **kwargs: Any,
) -> None:
    stage, _, operation = action.partition("_")
    if not has_registrations():
        return
    field = _field_of(sender)
    if field is None:
        return
    sides = _sides(field)
    watched = [(side, entry) for side in sides if (entry := _entry(side)) is not None]
    if not watched:
        return
    key = f"{_PLAN}:{sender._meta.label}:{operation}"
    if stage == "pre":
        instance.__dict__[key] = _plan(
            sender, sides=sides, watched=watched, instance=instance, reverse=reverse,
            operation=operation, pk_set=pk_set, using=using,
        )
    elif stage == "post":
        events = instance.__dict__.pop(key, None)
        if events:
            record_on_commit(events, using)


def _entry(side: _Side) -> Registration | None:
    entry = registration(side.model)
    return entry if entry is not None and side.name in entry.m2m else None


def _plan(
    through: type[models.Model],
    *,
    sides: tuple[_Side, _Side],
    watched: list[tuple[_Side, Registration]],
    instance: models.Model,
    reverse: bool,
    operation: str,
    pk_set: set[Any] | None,
    using: str,
) -> list[Event]:
    """The records this operation will make, computed before it runs."""
    rows = through._base_manager.using(using)
    mine, other = (sides[1], sides[0]) if reverse else (sides[0], sides[1])
    if operation == "add":
        pairs = {_pair(mine, instance.pk, pk) for pk in pk_set or ()}
    else:
        held = rows.filter(**{mine.column: instance.pk}).values_list(
            sides[0].column, sides[1].column
        )
        pairs = {
            (source, target)
            for source, target in held
            if operation == "clear" or (target if mine.index == 0 else source) in (pk_set or ())
        }
    if not pairs:
        return []
    limit = django_option("BULK_ROW_LIMIT")
    events: list[Event] = []
    for side, entry in watched:
        keys = {pair[side.index] for pair in pairs}
        if len(keys) > limit:
            where = f"{mine.model._meta.label} {instance.pk}" if side is other else ""
            events.append(summary_event(
                entry, "UPDATE", operation=f"{operation} on {side.name}", count=len(keys),
                where=where, limit=limit,
            ))
            continue
        before: dict[Any, set[Any]] = defaultdict(set)
        for source, target in rows.filter(**{f"{side.column}__in": keys}).values_list(
            sides[0].column, sides[1].column
        ):
            pair = (source, target)
            before[pair[side.index]].add(pair[1 - side.index])
        named = _objects(side.model, keys, instance, using)
        for key in sorted_keys(keys):
            touched = {pair[1 - side.index] for pair in pairs if pair[side.index] == key}
            after = before[key] | touched if operation == "add" else before[key] - touched
            rendering = Rendering(entry.tracked)
            changes = {side.name: [rendering.related(side.name, before[key]),
                                   rendering.related(side.name, after)]}
            extra = {"m2m": operation, "field": side.name, "pks": _pks(touched)[:100],
                     "count": len(touched)}
            events.append(row_event(
                entry, "UPDATE", pk=key, shown=named.get(key), changes=changes,
                rendering=rendering, extra=extra,
            ))
    return events


def _pair(mine: _Side, own: Any, other: Any) -> tuple[Any, Any]:
    return (own, other) if mine.index == 0 else (other, own)


def _objects(
    model: type[models.Model], keys: set[Any], instance: models.Model, using: str
) -> dict[Any, str]:
    """The objects' ``str()`` for object_repr: the instance at hand, the others read."""
    if isinstance(instance, model) and keys == {instance.pk}:
        return {instance.pk: object_repr(instance)}
    found = model._base_manager.using(using).in_bulk(list(keys))
    return {pk: object_repr(obj) for pk, obj in found.items()}


def _pks(pks: set[Any]) -> list[Any]:
    return [json_value(None, pk)[0] for pk in sorted_keys(pks)]
