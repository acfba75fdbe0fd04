"""The Django app: add ``"audit_logging.contrib.django"`` to ``INSTALLED_APPS``.

It reads ``settings.AUDIT_LOGGING``, configures capture once when Django starts, binds each
request's context (:mod:`.middleware`), records logins and logouts, records the changes of
the models given to :func:`register` (bulk writes included), and adds the management commands
``consume_audit_logs`` and ``audit_logs_status``. Needs the ``[django]`` extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from audit_logging.errors import MissingExtraError

try:
    import django  # noqa: F401 - only to say which extra is missing
except ImportError:
    raise MissingExtraError("django", "django") from None

if TYPE_CHECKING:
    from audit_logging.contrib.django.bulk import AuditedQuerySetMixin
    from audit_logging.contrib.django.registry import register, unregister

__all__ = ["AuditedQuerySetMixin", "register", "unregister"]

# Imported on first use: this package is imported by INSTALLED_APPS before Django's models
# are ready, and the model-capture modules import Django's model layer.
_LAZY = {
    "register": "audit_logging.contrib.django.registry",
    "unregister": "audit_logging.contrib.django.registry",
    "AuditedQuerySetMixin": "audit_logging.contrib.django.bulk",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
