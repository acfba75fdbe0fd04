"""The test project's URLs: each part of the Django app's tests adds its own module here."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver

urlpatterns: list[URLPattern | URLResolver] = []
