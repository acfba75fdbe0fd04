"""Two views: ``ping`` (is the server up) and ``visit``, which changes one Customer row, so
each audit variant records exactly one model change (an UPDATE) per request."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from bench.django_site.models import Customer
from bench.django_site.settings import VARIANT


def ping(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"ok", content_type="text/plain")


@csrf_exempt
@require_POST
def visit(request: HttpRequest, pk: int) -> JsonResponse:
    customer = Customer.objects.get(pk=pk)
    before = customer.visits
    customer.visits = before + 1
    customer.last_seen = timezone.now()
    customer.save()
    if VARIANT == "wsgi":
        # Without the Django app the view records the change itself.
        from audit_logging import log_audit_event

        log_audit_event(
            action="UPDATE",
            object_type="Customer",
            object_id=str(pk),
            object_repr=customer.name,
            changes={"visits": [before, customer.visits]},
        )
    return JsonResponse({"id": pk, "visits": customer.visits})


urlpatterns = [
    path("ping", ping),
    path("customers/<int:pk>/visit", visit),
]
