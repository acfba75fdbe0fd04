"""Flask: ``FlaskAudit(app)``, the WSGI middleware plus two things only Flask knows.

- **The session.** Flask keeps its session in a signed cookie whose value changes whenever
  the session does (a login, a flash message, a cart), so the cookie's hash names a new
  "session" at each change and records of one visit cannot be told apart from another's.
  The extension keeps a random id in the session itself (``_audit_session_id``), made the
  first time the session holds anything, and stores that id (hashed by default) as the
  record's ``session_key``: one value for the whole life of the session.
- **The user.** ``get_user`` is called inside the request, when a record first needs the
  user, so it can read ``flask.session``, ``flask.g`` or Flask-Login's ``current_user``.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable
from typing import Final

from audit_logging.errors import MissingExtraError

try:
    from flask import Flask, Response, has_request_context, session
except ImportError:
    raise MissingExtraError("flask", "flask") from None

from audit_logging.context import current_context
from audit_logging.errors import ConfigurationError
from audit_logging.middleware._request import RequestAudit, require_hash_key
from audit_logging.middleware.wsgi import AuditWSGIMiddleware
from audit_logging.session_key import stored_session_key
from audit_logging.settings import Settings

SESSION_ID_KEY: Final = "_audit_session_id"
EXTENSION_NAME: Final = "audit_logging"
# What the extension itself writes (secrets.token_urlsafe(24)); anything else found under
# the key (an app that wrote it, a session from elsewhere) is replaced, never stored.
_SESSION_ID_RE: Final = re.compile(r"[A-Za-z0-9_-]{32}")

FlaskUserGetter = Callable[[], "tuple[str | None, str | None] | None"]


class FlaskAudit:
    """Binds each request's IP address, user agent, session, user and request id (see
    :class:`audit_logging.middleware.AuditWSGIMiddleware` for ``trusted_proxies``,
    ``forwarded_header`` and ``audit_requests``). ``track_sessions=False`` stores no
    session at all."""

    def __init__(
        self,
        app: Flask | None = None,
        *,
        settings: Settings | None = None,
        trusted_proxies: Iterable[str] = (),
        forwarded_header: str | None = None,
        get_user: FlaskUserGetter | None = None,
        audit_requests: RequestAudit | None = None,
        track_sessions: bool = True,
    ) -> None:
        self.settings = settings if settings is not None else Settings.load()
        if track_sessions:
            require_hash_key(self.settings, "track_sessions=False")
        self.trusted_proxies = tuple(trusted_proxies)
        self.forwarded_header = forwarded_header
        self.get_user = get_user
        self.audit_requests = audit_requests
        self.track_sessions = track_sessions
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        if EXTENSION_NAME in app.extensions:
            raise ConfigurationError("FlaskAudit", f"is already set up on the app {app.name!r}")
        app.wsgi_app = AuditWSGIMiddleware(  # type: ignore[method-assign]
            app.wsgi_app,
            settings=self.settings,
            trusted_proxies=self.trusted_proxies,
            forwarded_header=self.forwarded_header,
            session_cookie=None,  # the session is read inside Flask, below
            get_user=None,
            audit_requests=self.audit_requests,
        )
        app.before_request(self._bind)
        if self.track_sessions:
            app.after_request(self._keep_session_id)
        if self.audit_requests is not None:
            # The per-request record leaves when the server closes the response, after Flask
            # has popped the request: the user and session are read while they still exist.
            app.teardown_request(self._settle)
        app.extensions[EXTENSION_NAME] = self

    def _bind(self) -> None:
        context = current_context()
        if context is None:
            return
        if self.get_user is not None:
            context.resolve_user_with(self.get_user)
        if self.track_sessions:
            context.resolve_session_with(self._stored_session_key)

    def _settle(self, error: BaseException | None = None) -> None:
        context = current_context()
        if context is not None:
            context.fields()  # resolves the user and the session now, inside the request

    def _stored_session_key(self) -> str | None:
        if not has_request_context():
            return None
        return stored_session_key(
            _session_id(), self.settings.session_key_mode, self.settings.hash_key
        )

    def _keep_session_id(self, response: Response) -> Response:
        # A session that began in this request with no record to need its id gets it now,
        # so the next request's records carry the same one.
        _session_id()
        return response


def _session_id() -> str | None:
    """The session's audit id; made now if the session holds anything and has none yet.
    None for an empty session: an anonymous visit gets no cookie because of auditing."""
    found = session.get(SESSION_ID_KEY)
    if isinstance(found, str) and _SESSION_ID_RE.fullmatch(found):
        return found
    if not any(key != SESSION_ID_KEY for key in session):
        return None
    made = secrets.token_urlsafe(24)
    session[SESSION_ID_KEY] = made
    return made
