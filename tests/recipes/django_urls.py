"""URLs of the Django app the README's Django recipe is tested with."""

from __future__ import annotations

import logging

from django.http import HttpRequest, JsonResponse
from django.urls import path


def refund(request: HttpRequest, order_id: str) -> JsonResponse:
    logging.getLogger("audit").info(
        "Refunded order", extra={"action": "UPDATE", "object_type": "Order", "object_id": order_id}
    )
    return JsonResponse({"status": "refunded"})


urlpatterns = [path("orders/<str:order_id>/refund", refund)]
