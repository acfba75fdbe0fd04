"""Fixtures of the Django app's tests (importing them sets Django up with the test project)."""

from tests.contrib_django.model_fixtures import db, model_stream, options, records, registered

__all__ = ["db", "model_stream", "options", "records", "registered"]
