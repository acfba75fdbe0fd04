"""``python -m audit_logging.api [--host H] [--port P] [--insecure-no-auth] [--no-metrics]``:
serve the API."""

from __future__ import annotations

import argparse
import asyncio
import copy
import logging
import sys
from pathlib import Path
from typing import Any

import audit_logging
from audit_logging.errors import AuditLoggingError, MissingExtraError
from audit_logging.middleware import AuditMiddleware
from audit_logging.settings import Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m audit_logging.api",
        description="Serve the audit log query API (settings from the environment and .env).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to bind (8000)")
    parser.add_argument(
        "--env-file", default=".env", help="a KEY=value settings file read after the environment"
    )
    parser.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="serve without authentication when no token is configured (local development only)",
    )
    parser.add_argument(
        "--no-metrics",
        action="store_true",
        help="keep no Prometheus metrics (/metrics then answers 501)",
    )
    parser.add_argument(
        "--trusted-proxy",
        action="append",
        default=[],
        metavar="NETWORK",
        help="a proxy whose forwarding header (AUDIT_LOG_FORWARDED_HEADER) names the client "
        "(repeatable; e.g. 10.0.0.0/8); without it the peer address is recorded and "
        "forwarding headers are ignored",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
    )
    return parser


def _drain_audit_at_shutdown(app: Any) -> Any:
    """The app, with the audit handler drained when the server shuts down: uvicorn ends a
    SIGTERM by raising the signal again, so neither code after uvicorn.run nor atexit runs."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return

        async def send_after_draining(message: Any) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                await asyncio.to_thread(audit_logging.shutdown)
            await send(message)

        await app(scope, receive, send_after_draining)

    return wrapped


def _log_config() -> dict[str, Any]:
    """uvicorn's logging configuration, with the query string of a request that carries a
    credential redacted from the access log (refused with 400, the line is written all the same)."""
    from uvicorn.config import LOGGING_CONFIG

    from audit_logging.api.credentials import RedactCredentials

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact_credentials"] = {"()": RedactCredentials}
    config["handlers"]["access"].setdefault("filters", []).append("redact_credentials")
    config["loggers"]["uvicorn.access"].setdefault("filters", []).append("redact_credentials")
    return config


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not 0 < args.port < 65536:
        print(f"--port must be from 1 to 65535, got {args.port}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.log_level == "info":
        # opensearch-py logs every request at INFO; uvicorn's access log already says enough.
        logging.getLogger("opensearch").setLevel(logging.WARNING)
    try:
        try:
            import uvicorn
        except ImportError:
            raise MissingExtraError("api", "uvicorn") from None
        from audit_logging.api import create_app

        settings = Settings.load(env_file=Path(args.env_file))
        # Reads are audited: ship those records, with the caller's address and user agent.
        audit_logging.configure(settings=settings)
        api = create_app(
            settings, allow_no_auth=args.insecure_no_auth, metrics=not args.no_metrics
        )
        app = AuditMiddleware(
            _drain_audit_at_shutdown(api),
            settings=settings,
            trusted_proxies=args.trusted_proxy,
            session_cookie=None,  # Bearer tokens, no sessions
            get_user=None,  # the app names the caller in each record itself
        )
    except AuditLoggingError as exc:
        print(f"audit_logging.api: {exc}", file=sys.stderr)
        return 2
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        server_header=False,
        # uvicorn would otherwise believe X-Forwarded-For from 127.0.0.1 (or from
        # FORWARDED_ALLOW_IPS) and rewrite the peer address before the audit middleware sees
        # it; only --trusted-proxy decides when a forwarding header names the client.
        proxy_headers=False,
        log_config=_log_config(),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
