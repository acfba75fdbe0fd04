"""Which models have their changes recorded: :func:`register` and :func:`unregister`.

Registering connects the model's save, delete and many-to-many signals and wraps its
managers' querysets (:mod:`.bulk`) so that bulk writes are recorded too; the model class
itself is left as it is.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, overload

from django.db import models

from audit_logging.contrib.django.changes import TrackedFields
from audit_logging.contrib.django.conf import DJANGO_OPTIONS, DjangoOption, django_option
from audit_logging.errors import ConfigurationError

ModelT = TypeVar("ModelT", bound=type[models.Model])


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(name, f"must be a positive integer, got {value!r}")
    return value


def _boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigurationError(name, f"must be True or False, got {value!r}")
    return value


DJANGO_OPTIONS["BULK_ROW_LIMIT"] = DjangoOption(
    1000,
    _positive_int,
    "Rows of one bulk write (or one model's rows in a cascade) recorded one by one; over it,"
    " one summary record names the model, the filter and the count.",
)
DJANGO_OPTIONS["RECORD_ROLLED_BACK"] = DjangoOption(
    False,
    _boolean,
    "Also record model changes whose transaction (or savepoint) rolled back, marked"
    ' "rolled_back": true in extra.',
)


@dataclasses.dataclass(frozen=True)
class Registration:
    """How one model's changes are recorded."""

    model: type[models.Model]
    label: str
    tracked: TrackedFields
    # Many-to-many fields of this model (either side) whose changes are recorded, by the
    # name they have on this model: the field's name, or the reverse accessor's.
    m2m: tuple[str, ...]


_registry: dict[type[models.Model], Registration] = {}
# Registered while Django was still importing models (the decorator in models.py): finished
# once the app registry is ready, since reverse relations are only known then.
_pending: dict[type[models.Model], tuple[Any, Any, Any]] = {}
_lock = threading.Lock()


def registration(model: type[models.Model]) -> Registration | None:
    """The registration of ``model`` (a proxy model counts as its concrete model)."""
    if _pending:
        finish_registrations()
    found = _registry.get(model)
    if found is None and model._meta.proxy:
        found = _registry.get(model._meta.concrete_model)  # type: ignore[arg-type]
    return found


def registered_models() -> list[type[models.Model]]:
    return list(_registry)


def has_registrations() -> bool:
    """Whether any model is registered (or waits for the app registry to be)."""
    return bool(_registry or _pending)


@overload
def register(
    model: ModelT,
    *,
    include_fields: Iterable[str] | None = None,
    exclude_fields: Iterable[str] | None = None,
    mask_fields: Iterable[str] | None = None,
) -> ModelT: ...


@overload
def register(
    model: None = None,
    *,
    include_fields: Iterable[str] | None = None,
    exclude_fields: Iterable[str] | None = None,
    mask_fields: Iterable[str] | None = None,
) -> Callable[[ModelT], ModelT]: ...


def register(
    model: ModelT | None = None,
    *,
    include_fields: Iterable[str] | None = None,
    exclude_fields: Iterable[str] | None = None,
    mask_fields: Iterable[str] | None = None,
) -> ModelT | Callable[[ModelT], ModelT]:
    """Record the creations, changes and deletions of ``model``'s rows, bulk writes and
    many-to-many changes included. ``include_fields`` (all concrete fields by default) and
    ``exclude_fields`` choose the fields shown in ``changes``; ``mask_fields`` are shown as a
    fixed mask. Usable as a decorator, with or without arguments. Registering again replaces
    the earlier choice."""
    if model is None:

        def decorate(cls: ModelT) -> ModelT:
            return register(
                cls,
                include_fields=include_fields,
                exclude_fields=exclude_fields,
                mask_fields=mask_fields,
            )

        return decorate
    from django.apps import apps

    from audit_logging.contrib.django import bulk, signals

    _check_model(model)
    # A bad option fails here, when the app starts, rather than in the first save.
    for option in ("BULK_ROW_LIMIT", "RECORD_ROLLED_BACK"):
        django_option(option)
    choice = (include_fields, exclude_fields, mask_fields)
    if apps.models_ready:
        entry = _registration(model, *choice)  # a bad field name fails before any change
        with _lock:
            _pending.pop(model, None)
            _registry[model] = entry
    else:
        with _lock:
            _pending[model] = choice
    signals.connect(model)
    bulk.audit_managers(model)
    bulk.forget_related_managers()
    return model


def finish_registrations() -> None:
    """Finish the registrations made while Django was importing models (called by the app's
    ``ready()``, else at the first change of any registered model): a bad field name given
    to the decorator raises here."""
    from django.apps import apps

    from audit_logging.contrib.django import bulk, signals

    if not apps.models_ready:
        return
    with _lock:
        pending = list(_pending.items())
        _pending.clear()
    problem: ConfigurationError | None = None
    for model, choice in pending:
        try:
            entry = _registration(model, *choice)
        except ConfigurationError as exc:
            problem = problem or exc
            continue
        with _lock:
            _registry[model] = entry
        signals.connect(model)
        for proxy in signals.proxies_of(model):
            bulk.audit_managers(proxy)
    bulk.forget_related_managers()
    if problem is not None:
        raise problem


def unregister(model: type[models.Model]) -> None:
    """Stop recording ``model``'s changes (its querysets stay wrapped, and pass through)."""
    from audit_logging.contrib.django import signals

    with _lock:
        _registry.pop(model, None)
        _pending.pop(model, None)
    signals.disconnect(model)


def _check_model(model: Any) -> None:
    if not (isinstance(model, type) and issubclass(model, models.Model)):
        raise ConfigurationError("register(model)", f"must be a Django model class, got {model!r}")
    if model._meta.abstract:
        raise ConfigurationError(
            f"register({model._meta.label})", "is an abstract model: register its subclasses"
        )


def _registration(
    model: type[models.Model],
    include: Iterable[str] | None,
    exclude: Iterable[str] | None,
    mask: Iterable[str] | None,
) -> Registration:
    meta = model._meta
    label = meta.label
    concrete = [f for f in meta.concrete_fields if not f.primary_key]
    m2m_forward = [f.name for f in meta.many_to_many]
    m2m_reverse = [
        rel.get_accessor_name() or rel.name
        for rel in meta.related_objects
        if rel.many_to_many
    ]
    known = {f.name: f for f in concrete} | {f.attname: f for f in concrete}
    every = set(known) | set(m2m_forward) | set(m2m_reverse)
    include_set = _names(label, "include_fields", include, every)
    exclude_set = _names(label, "exclude_fields", exclude, every)
    mask_set = _names(label, "mask_fields", mask, every)

    def chosen(name: str, attname: str, *, default: bool) -> bool:
        if exclude_set is not None and (name in exclude_set or attname in exclude_set):
            return False
        if include_set is not None:
            return name in include_set or attname in include_set
        return default

    fields = tuple(
        f
        for f in concrete
        # auto_now fields change on every save: left out unless named in include_fields.
        if chosen(f.name, f.attname, default=not getattr(f, "auto_now", False))
    )
    quiet = frozenset(f.name for f in fields if getattr(f, "auto_now", False))
    masked = frozenset(known[name].name if name in known else name for name in mask_set or ())
    m2m = tuple(name for name in m2m_forward + m2m_reverse if chosen(name, name, default=True))
    return Registration(model, label, TrackedFields(fields, masked, quiet), m2m)


def _names(
    label: str, option: str, given: Iterable[str] | None, known: set[str]
) -> set[str] | None:
    if given is None:
        return None
    if isinstance(given, str):
        raise ConfigurationError(
            f"register({label}, {option}=...)", f"must be a list of field names, got {given!r}"
        )
    names = set(given)
    unknown = sorted(str(name) for name in names - known)
    if unknown:
        raise ConfigurationError(
            f"register({label}, {option}=...)", f"names no field of {label}: {', '.join(unknown)}"
        )
    return names
