"""The library's settings in a Django project: ``settings.AUDIT_LOGGING``, a dict with the
environment's names (``{"RABBITMQ_STREAM_HOST": "mq.internal", ...}``; the field names such
as ``batch_size`` are accepted too). A variable set in the environment wins over the dict, so
one image runs in every environment."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from typing import Any

from audit_logging.errors import ConfigurationError
from audit_logging.settings import Settings, environment_name

DJANGO_SETTING = "AUDIT_LOGGING"


@dataclasses.dataclass(frozen=True)
class DjangoOption:
    """A key of ``settings.AUDIT_LOGGING`` that only the Django app reads (not a library
    setting): its default and how a given value is checked (raising ConfigurationError)."""

    default: Any
    parse: Callable[[str, Any], Any]
    doc: str


# Filled by the app's modules at import (model capture's options, for one).
DJANGO_OPTIONS: dict[str, DjangoOption] = {}


def django_option(key: str) -> Any:
    """The value of a Django-only option of ``settings.AUDIT_LOGGING``, checked."""
    from django.conf import settings

    option = DJANGO_OPTIONS[key]
    given = getattr(settings, DJANGO_SETTING, None) or {}
    if not isinstance(given, Mapping) or key not in given:
        return option.default
    return option.parse(f"{DJANGO_SETTING}[{key!r}]", given[key])


def django_values() -> dict[str, Any]:
    """``settings.AUDIT_LOGGING`` keyed by environment name; checked, never echoed (it may
    hold passwords)."""
    from django.conf import settings

    given = getattr(settings, DJANGO_SETTING, None)
    if given is None:
        return {}
    if not isinstance(given, Mapping):
        raise ConfigurationError(
            DJANGO_SETTING, f"must be a dict of settings, got a {type(given).__name__}"
        )
    values: dict[str, Any] = {}
    for key, value in given.items():
        if key in DJANGO_OPTIONS:
            continue
        env = environment_name(key) if isinstance(key, str) else None
        if env is None:
            raise ConfigurationError(
                f"{DJANGO_SETTING}[{key!r}]", "is not a setting of audit_logging"
            )
        if env in values:
            raise ConfigurationError(f"{DJANGO_SETTING}[{key!r}]", f"gives {env} a second time")
        values[env] = value
    return values


def library_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """The library's settings: the environment, then ``settings.AUDIT_LOGGING``, then a
    ``.env`` file."""
    env = os.environ if environ is None else environ
    from_django = {k: v for k, v in django_values().items() if not _is_set(env, k)}
    return Settings.load(environ=env, **from_django)


def library_environ(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment with ``settings.AUDIT_LOGGING`` filled in where a variable is not set:
    for code that reads its settings from an environment (the consumer's command line)."""
    env = dict(os.environ if environ is None else environ)
    for key, value in django_values().items():
        if not _is_set(env, key) and value is not None:
            env[key] = _as_text(value)
    return env


def _is_set(env: Mapping[str, str], key: str) -> bool:
    # An empty variable counts as unset, as Settings.load reads it.
    return env.get(key, "").strip() != ""


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple, set, frozenset)):
        return ",".join(str(item) for item in value)
    return str(value)
