"""Login and logout views for the Django app's auth records, and an async view (included
from the project's urls.py under ``auth/``)."""

from __future__ import annotations

import logging

from django.contrib.auth import aauthenticate, alogin, authenticate, login, logout
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path

audit = logging.getLogger("audit")


def login_view(request: HttpRequest) -> HttpResponse:
    user = authenticate(
        request, username=request.POST.get("username"), password=request.POST.get("password")
    )
    if user is None:
        return JsonResponse({"status": "refused"}, status=401)
    login(request, user)
    # Logged after login(): the record must carry the new user and the new session.
    audit.info("Opened the dashboard", extra={"action": "VIEW", "object_type": "Dashboard"})
    return JsonResponse({"status": "ok"})


def logout_view(request: HttpRequest) -> HttpResponse:
    logout(request)
    audit.info("Left", extra={"action": "VIEW", "object_type": "Goodbye"})
    return JsonResponse({"status": "bye"})


def order_view(request: HttpRequest, order_id: str) -> HttpResponse:
    audit.info("Viewed order", extra={"action": "VIEW", "object_type": "Order",
                                      "object_id": order_id})
    return JsonResponse({"status": "ok"})


async def async_login_view(request: HttpRequest) -> HttpResponse:
    user = await aauthenticate(
        request, username=request.POST.get("username"), password=request.POST.get("password")
    )
    if user is None:
        return JsonResponse({"status": "refused"}, status=401)
    await alogin(request, user)
    audit.info("Opened the dashboard", extra={"action": "VIEW", "object_type": "AsyncDashboard"})
    return JsonResponse({"status": "ok"})


async def async_order_view(request: HttpRequest, order_id: str) -> HttpResponse:
    audit.info("Viewed order", extra={"action": "VIEW", "object_type": "AsyncOrder",
                                      "object_id": order_id})
    return JsonResponse({"status": "ok"})


urlpatterns = [
    path("login/", login_view),
    path("logout/", logout_view),
    path("orders/<str:order_id>/", order_view),
    path("async/login/", async_login_view),
    path("async/orders/<str:order_id>/", async_order_view),
]
