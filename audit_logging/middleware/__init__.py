"""Request-context middleware for ASGI and WSGI apps."""

from audit_logging.middleware._request import RequestAudit
from audit_logging.middleware.asgi import AuditMiddleware
from audit_logging.middleware.wsgi import AuditWSGIMiddleware

__all__ = ["AuditMiddleware", "AuditWSGIMiddleware", "RequestAudit"]
