"""Bulk writes of registered models: ``bulk_create``, ``bulk_update``, ``QuerySet.update``
and ``QuerySet.delete``, which send no save signals (or, for delete, one per row).

Registering a model wraps its managers: each manager's class is swapped for a subclass whose
``get_queryset`` hands out a subclass of the queryset class the manager made, with
:class:`AuditedQuerySetMixin` in front. The model class is untouched, and a custom manager
or queryset keeps its methods. A queryset built elsewhere (``QuerySet(model=...)``) is
covered by putting the mixin in its class.

Each operation reads the affected rows before it writes and after, in the same transaction,
and records one UPDATE per row that changed (with old and new values), one CREATE or DELETE
per row; over ``BULK_ROW_LIMIT`` rows, one summary record names the model, the filter (the
SQL ``WHERE`` clause without its parameter values) and the count. Raw SQL is not seen.
"""

from __future__ import annotations

import contextvars
from collections.abc import Collection, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from django.core.exceptions import EmptyResultSet, FullResultSet
from django.db import models, router, transaction

from audit_logging.contrib.django import signals
from audit_logging.contrib.django.changes import Rendering
from audit_logging.contrib.django.commit import Event, record_on_commit, record_rolled_back
from audit_logging.contrib.django.conf import django_option
from audit_logging.contrib.django.events import object_repr, row_event, summary_event
from audit_logging.contrib.django.registry import Registration, registration

_WHERE_LIMIT = 1000
# Primary keys per read of the rows a bulk_update or update touches (SQLite's bound on
# query parameters is far above it on every supported version).
_READ_BATCH = 900
# Set while Django's bulk_update runs: it writes through QuerySet.update, batch by batch,
# which must not record the rows a second time.
_in_bulk_update: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "audit_logging_in_bulk_update", default=False
)


if TYPE_CHECKING:
    _QuerySet = models.QuerySet[Any]
else:
    _QuerySet = object


class AuditedQuerySetMixin(_QuerySet):
    """Records the bulk writes of a registered model's querysets; for other models every
    method passes straight through. Put it before ``QuerySet`` in a queryset's bases."""

    def bulk_create(  # noqa: PLR0917 - QuerySet.bulk_create's own signature
        self,
        objs: Iterable[Any],
        batch_size: int | None = None,
        ignore_conflicts: bool = False,
        update_conflicts: bool = False,
        update_fields: Collection[str] | None = None,
        unique_fields: Collection[str] | None = None,
    ) -> list[Any]:
        entry = registration(self.model)
        created = super().bulk_create(
            objs,
            batch_size=batch_size,
            ignore_conflicts=ignore_conflicts,
            update_conflicts=update_conflicts,
            update_fields=update_fields,
            unique_fields=unique_fields,
        )
        if entry is None:
            return created
        limit = django_option("BULK_ROW_LIMIT")
        if len(created) > limit:
            events = [summary_event(entry, "CREATE", operation="bulk_create",
                                    count=len(created), where="", limit=limit)]
        else:
            extra: dict[str, Any] = {"bulk": "bulk_create"}
            if ignore_conflicts or update_conflicts:
                # Some rows may have been skipped or updated instead: the record says so.
                extra["on_conflict"] = "ignore" if ignore_conflicts else "update"
            events = [_created(entry, obj, extra) for obj in created]
        record_on_commit(events, _write_db(self))
        return created

    def bulk_update(
        self, objs: Iterable[Any], fields: Iterable[str], batch_size: int | None = None
    ) -> int:
        entry = registration(self.model)
        fields = list(fields)
        tracked = entry.tracked.only(fields) if entry is not None else ()
        if entry is None or not tracked:
            return super().bulk_update(objs, fields, batch_size=batch_size)
        objs = list(objs)
        using = _write_db(self)
        limit = django_option("BULK_ROW_LIMIT")
        pks = [obj.pk for obj in objs]
        if len(set(pks)) > limit:
            count = self._plain_bulk_update(objs, fields, batch_size)
            where = f"primary key in a list of {len(set(pks))}"
            summary = summary_event(entry, "UPDATE", operation="bulk_update", count=count,
                                    where=where, limit=limit)
            record_on_commit([summary], using)
            return count
        with transaction.atomic(using=using, savepoint=False):
            before = _rows(entry, pks, tracked, using)
            count = self._plain_bulk_update(objs, fields, batch_size)
            record_on_commit(_updated(entry, tracked, before, using, "bulk_update"), using)
        return count

    def _plain_bulk_update(
        self, objs: list[Any], fields: list[str], batch_size: int | None
    ) -> int:
        token = _in_bulk_update.set(True)
        try:
            return super().bulk_update(objs, fields, batch_size=batch_size)
        finally:
            _in_bulk_update.reset(token)

    def update(self, **kwargs: Any) -> int:
        entry = None if _in_bulk_update.get() else registration(self.model)
        fields = entry.tracked.only(kwargs) if entry is not None else ()
        if entry is None or not fields or self.query.is_sliced:
            return super().update(**kwargs)
        using = _write_db(self)
        limit = django_option("BULK_ROW_LIMIT")
        with transaction.atomic(using=using, savepoint=False):
            reading = self.using(using).values("pk", *(f.attname for f in fields))
            found = list(reading.order_by()[: limit + 1])
            if len(found) > limit:
                count = super().update(**kwargs)
                event = summary_event(entry, "UPDATE", operation="update", count=count,
                                      where=_where(self, using), limit=limit)
                event["extra"]["fields"] = [f.name for f in fields]
                record_on_commit([event], using)
                return count
            before = {row.pop("pk"): row for row in found}
            count = super().update(**kwargs)
            record_on_commit(_updated(entry, fields, before, using, "update"), using)
        return count

    def delete(self) -> tuple[int, dict[str, int]]:
        # Django sends post_delete for each row of a model that has receivers (it loads the
        # rows to do so, cascades included): collected here, so a model over the limit
        # gets one summary record instead.
        entry = registration(self.model)
        if entry is None:
            return super().delete()
        using = _write_db(self)
        where = _where(self, using)
        limit = django_option("BULK_ROW_LIMIT")
        with signals.collecting_deletes(limit) as scope:
            try:
                result = super().delete()
            except BaseException:
                # Rows Django had deleted (and signalled) before the failure: rolled back.
                record_rolled_back([e for rows in scope.events.values() for e in rows])
                raise
        events: list[Event] = []
        for model, count in scope.counts.items():
            model_entry = registration(model)
            if model_entry is None:
                continue
            operation = "delete" if model is self.model else f"delete cascaded from {entry.label}"
            if count > limit:
                events.append(summary_event(model_entry, "DELETE", operation=operation,
                                            count=count, where=where, limit=limit))
            else:
                for event in scope.events[model]:
                    event["extra"] = {**(event.get("extra") or {}), "bulk": operation}
                    events.append(event)
        record_on_commit(events, scope.using or using)
        return result


def _write_db(queryset: Any) -> str:
    using: str = queryset._db or router.db_for_write(queryset.model, **queryset._hints)
    return using


def _where(queryset: Any, using: str) -> str:
    """The queryset's filter as SQL with placeholders for its values (never the values)."""
    query = queryset.query
    try:
        compiler = query.get_compiler(using=using)
        sql, _ = query.where.as_sql(compiler, compiler.connection)
    except FullResultSet:
        return "(all rows)"
    except EmptyResultSet:
        return "(no rows)"
    except Exception as exc:  # noqa: BLE001 - a description, never a reason to fail a write
        return f"(not described: {type(exc).__name__})"
    return str(sql)[:_WHERE_LIMIT] or "(all rows)"


def _rows(
    entry: Registration, pks: Sequence[Any], fields: Sequence[models.Field[Any, Any]], using: str
) -> dict[Any, dict[str, Any]]:
    rows: dict[Any, dict[str, Any]] = {}
    manager = entry.model._base_manager.using(using)
    keys = list(dict.fromkeys(pk for pk in pks if pk is not None))
    for start in range(0, len(keys), _READ_BATCH):
        batch = keys[start : start + _READ_BATCH]
        for row in manager.filter(pk__in=batch).values("pk", *(f.attname for f in fields)):
            rows[row.pop("pk")] = row
    return rows


def _updated(
    entry: Registration,
    fields: Sequence[models.Field[Any, Any]],
    before: dict[Any, dict[str, Any]],
    using: str,
    operation: str,
) -> list[Event]:
    """One UPDATE per row whose tracked values changed, read again after the write (the new
    values may come from expressions such as ``F("balance") + 1``)."""
    events: list[Event] = []
    manager = entry.model._base_manager.using(using)
    keys = list(before)
    for start in range(0, len(keys), _READ_BATCH):
        found = manager.in_bulk(keys[start : start + _READ_BATCH])
        for pk in keys[start : start + _READ_BATCH]:
            instance = found.get(pk)
            if instance is None:
                continue
            rendering = Rendering(entry.tracked)
            changes = rendering.changed(fields, before[pk], signals.current_row(instance, fields))
            if changes:
                events.append(row_event(
                    entry, "UPDATE", pk=pk, shown=object_repr(instance), changes=changes,
                    rendering=rendering, extra={"bulk": operation},
                ))
    return events


def _created(entry: Registration, instance: models.Model, extra: dict[str, Any]) -> Event:
    rendering = Rendering(entry.tracked)
    fields = entry.tracked.fields
    changes = rendering.created(fields, signals.current_row(instance, fields))
    return row_event(
        entry, "CREATE", pk=instance.pk, shown=object_repr(instance), changes=changes,
        rendering=rendering, extra=dict(extra),
    )


# Wrapping the managers of registered models.

_queryset_classes: dict[type[Any], type[Any]] = {}
_manager_classes: dict[type[Any], type[Any]] = {}


def audited_queryset_class(base: type[models.QuerySet[Any]]) -> type[models.QuerySet[Any]]:
    """``base`` with :class:`AuditedQuerySetMixin` in front (made once per class); it keeps
    ``base``'s name and module, so it reads, pickles and deconstructs as ``base``."""
    if issubclass(base, AuditedQuerySetMixin):
        return base
    made = _queryset_classes.get(base)
    if made is None:
        made = type(base.__name__, (AuditedQuerySetMixin, base), {
            "__module__": base.__module__,
            "__qualname__": base.__qualname__,
            "__reduce__": _reduce_queryset,
            "_audit_logging_base": base,
        })
        _queryset_classes[base] = made
    return made


def _reduce_queryset(self: Any) -> tuple[Any, ...]:
    # The made class is not importable by its name: pickle the base and rebuild around it.
    return (_unpickle_queryset, (type(self)._audit_logging_base, self.__getstate__()))


def _unpickle_queryset(base: type[models.QuerySet[Any]], state: dict[str, Any]) -> Any:
    queryset: Any = models.QuerySet.__new__(audited_queryset_class(base))
    queryset.__setstate__(state)
    return queryset


def _audited_manager_class(base: type[Any]) -> type[Any]:
    made = _manager_classes.get(base)
    if made is None:

        def get_queryset(self: Any) -> Any:
            queryset = super(made, self).get_queryset()  # type: ignore[arg-type]
            if not isinstance(queryset, AuditedQuerySetMixin):
                queryset.__class__ = audited_queryset_class(type(queryset))
            return queryset

        # Same name and module: migrations deconstruct the manager as the app's own.
        made = type(base.__name__, (base,), {
            "__module__": base.__module__,
            "__qualname__": base.__qualname__,
            "get_queryset": get_queryset,
            "_audit_logging_wrapped": True,
        })
        _manager_classes[base] = made
    return made


def audit_managers(model: type[models.Model]) -> None:
    """Swap the class of each of ``model``'s managers (the declared ones and the copies
    Django hands out) for its audited subclass."""
    for manager in [*model._meta.local_managers, *model._meta.managers]:
        if not getattr(manager, "_audit_logging_wrapped", False):
            manager.__class__ = _audited_manager_class(type(manager))


def forget_related_managers() -> None:
    """Django makes the class of a related manager (``customer.orders``) once, from the
    related model's default manager class at that time, and keeps it on the descriptor: a
    class made before registration is forgotten, so the next one is made from the audited
    manager class."""
    from django.apps import apps

    if not apps.models_ready:
        return
    for model in apps.get_models(include_auto_created=True):
        for attribute in vars(model).values():
            cached = getattr(attribute, "__dict__", None)
            if isinstance(cached, dict):
                cached.pop("related_manager_cls", None)
