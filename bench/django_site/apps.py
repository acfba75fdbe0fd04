from __future__ import annotations

from django.apps import AppConfig

from bench.django_site.settings import VARIANT


class BenchSiteConfig(AppConfig):
    name = "bench.django_site"
    label = "bench_site"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from bench.django_site.models import Customer

        # Each library watches the same model, registered as its documentation says.
        if VARIANT == "auditlog":
            from auditlog.registry import auditlog

            auditlog.register(Customer)
        elif VARIANT == "ours":
            from audit_logging.contrib.django import register

            register(Customer)
