"""The app's configuration: what runs once Django's settings and models are loaded."""

from __future__ import annotations

from django.apps import AppConfig


class AuditLoggingConfig(AppConfig):
    name = "audit_logging.contrib.django"
    label = "audit_logging"
    verbose_name = "Audit logging"
