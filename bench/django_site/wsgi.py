"""The WSGI application gunicorn serves; the ``wsgi`` variant wraps it in this library's
``AuditWSGIMiddleware`` (the recipe for Django projects without the library's Django app)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from django.core.wsgi import get_wsgi_application

from bench.django_site.settings import VARIANT

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.django_site.settings")

application: Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
application = get_wsgi_application()
if VARIANT == "wsgi":
    import audit_logging
    from audit_logging.middleware import AuditWSGIMiddleware

    audit_logging.configure()
    application = AuditWSGIMiddleware(application, session_cookie="sessionid")
