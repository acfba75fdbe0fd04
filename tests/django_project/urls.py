"""The test project's URLs: each part of the Django app's tests adds its own module here."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, include, path

urlpatterns: list[URLPattern | URLResolver] = [
    path("auth/", include("tests.django_project.shop.views_auth")),
]
