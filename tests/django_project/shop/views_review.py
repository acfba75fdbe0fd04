"""Views of the review's tests (included from the project's urls.py under ``review/``)."""

from __future__ import annotations

from django.contrib.auth import logout
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path

from tests.django_project.shop.models import Customer


def close_account_view(request: HttpRequest, database: str) -> HttpResponse:
    # As under ATOMIC_REQUESTS: the change commits after the view logged the user out.
    with transaction.atomic(using=database):
        Customer.objects.using(database).filter(name=request.POST["name"]).delete()
        logout(request)
    return JsonResponse({"status": "closed"})


urlpatterns = [
    path("close-account/<str:database>/", close_account_view),
]
