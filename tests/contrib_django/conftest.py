"""Fixtures of the Django app's tests (importing them sets Django up with the test project)."""

from tests.contrib_django.model_fixtures import db, options, records, registered

__all__ = ["db", "options", "records", "registered"]
