"""``AuditHandler``: a ``logging.Handler`` whose ``emit`` only enqueues.

``emit`` takes a snapshot (the rendered message, the extra= values, the request context)
and hands it to the transport; the record is built, checked and encoded on the publisher's
thread. Nothing here touches the network, and nothing raises into the app: problems are
reported on the ``audit_logging`` logger, which this handler ignores (no recursion).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final

from audit_logging._capture_stats import count_rejected
from audit_logging.context import current_context
from audit_logging.errors import RecordError
from audit_logging.handlers._snapshot import PLAIN_TYPES, Snapshot, merge_truncated
from audit_logging.handlers.formatter import CONTEXT_ATTR, AuditJsonFormatter
from audit_logging.publisher import Encode, RecordRejected, StreamPublisher, Transport
from audit_logging.settings import Settings

library_logger = logging.getLogger("audit_logging")

# Records from these loggers are never audited: ours and our transports' (recursion).
IGNORED_LOGGERS: Final = frozenset(
    {"audit_logging", "rstream", "opensearchpy", "botocore", "boto3", "urllib3", "s3transfer"}
)

TransportFactory = Callable[[Settings, Encode], Transport]

# The attributes every LogRecord has; the others came from extra=.
_STANDARD: Final = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}
# Values kept as they are by emit; anything else goes through the snapshot.
_PLAIN: Final = PLAIN_TYPES
_TRACEBACKS: Final = logging.Formatter()
# What a LogRecord rebuilt from a snapshot needs besides the snapshot (cheaper than
# logging.makeLogRecord, which runs the whole LogRecord constructor first).
_SNAPSHOT_DEFAULTS: Final = {"args": (), "exc_info": None, "exc_text": None,
                             "stack_info": None, "levelname": "INFO", "levelno": logging.INFO}
_BUILT: Final = "built"


class AuditHandler(logging.Handler):
    """Sends audit records to the RabbitMQ stream. Keyword arguments are settings (see
    :class:`audit_logging.settings.Settings`), usable from ``logging.config.dictConfig``."""

    def __init__(
        self,
        level: int | str = logging.NOTSET,
        *,
        settings: Settings | None = None,
        transport_factory: TransportFactory | None = None,
        env_file: str | None = ".env",
        **setting_values: Any,
    ) -> None:
        # Everything that can fail comes before logging.Handler.__init__, which registers
        # the handler for logging.shutdown at exit: a handler refused here (a short
        # AUDIT_LOG_HASH_KEY) must not stay registered half-built and fail again there.
        if settings is None:
            settings = Settings.load(env_file=env_file, **setting_values)
        elif setting_values:
            raise TypeError("give either settings= or setting keyword arguments, not both")
        self.settings = settings
        self.audit_formatter = AuditJsonFormatter(settings, self._report_problem)
        factory = transport_factory or StreamPublisher
        self.transport: Transport = factory(settings, self._encode)
        try:
            super().__init__(level)
        except BaseException:
            self.transport.close(0.0)  # a bad level: nothing may keep running for it
            raise

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if record.name.partition(".")[0] in IGNORED_LOGGERS:
                return
            values = record.__dict__
            if "action" not in values:
                count_rejected("no_action")
                library_logger.error(
                    "Audit record from logger %r refused: no 'action' in extra= (message: %.200r)",
                    record.name,
                    record.getMessage(),
                )
                return
            # A snapshot of plain values, as QueueHandler.prepare makes: the message is
            # rendered and a traceback formatted now, so no frames are kept alive in the
            # queue, and the garbage collector has little there to scan. Containers are
            # copied deeply (the record is built later, on the publisher's thread).
            item: dict[Any, Any] = {}
            snapshot = None
            for key, value in values.items():
                if key in _STANDARD:
                    continue
                if type(value) not in _PLAIN:
                    if snapshot is None:
                        snapshot = Snapshot()
                    value = snapshot.field(key, value)  # noqa: PLW2901 - the copy replaces it
                item[key] = value
            if snapshot is not None and snapshot.problems:
                self._snapshot_problems(record.name, item, snapshot)
            item["name"] = record.name
            item["created"] = record.created
            item["msg"] = record.getMessage()
            if record.exc_info:
                item["exc_text"] = _TRACEBACKS.formatException(record.exc_info)
            elif record.exc_text:
                item["exc_text"] = record.exc_text
            if record.stack_info:
                item["stack_info"] = record.stack_info
            context = current_context()
            if context is not None:
                item[CONTEXT_ATTR] = context.fields()
            self.transport.submit(item)
        except Exception:
            library_logger.exception("Audit handler failed to take a record")

    def submit_record(self, record: dict[str, Any]) -> None:
        """Queue a record already built and checked (``log_audit_event``)."""
        self.transport.submit((_BUILT, record))

    def flush(self, timeout: float = 5.0) -> int:  # type: ignore[override]
        """Wait up to ``timeout`` s for the broker to confirm everything; return how many
        records are still unconfirmed."""
        return self.transport.flush(timeout)

    def close(self, timeout: float = 5.0) -> int:  # type: ignore[override]
        """Drain within ``timeout`` s and stop; return how many records were not
        delivered (kept in the spool for the next process)."""
        try:
            return self.transport.close(timeout)
        finally:
            super().close()

    def stats(self) -> dict[str, int]:
        return self.transport.stats()

    def _encode(self, item: Any) -> bytes:
        if type(item) is tuple:
            return self.audit_formatter.serialize_record(item[1])
        record = logging.LogRecord.__new__(logging.LogRecord)
        record.__dict__.update(_SNAPSHOT_DEFAULTS)
        record.__dict__.update(item)
        try:
            return self.audit_formatter.format(record).encode("utf-8")
        except RecordError as exc:
            library_logger.error("Audit record from logger %r refused: %s", record.name, exc)
            raise RecordRejected(str(exc), "invalid") from None
        except (ValueError, OverflowError, RecursionError) as exc:
            # A value the repairs let through that Python's own conversions refuse (a
            # timestamp of 10**400 seconds): one record refused, said once, no traceback.
            library_logger.error(
                "Audit record from logger %r refused: a field cannot be stored (%s: %.200s)",
                record.name, type(exc).__name__, exc,
            )
            raise RecordRejected(str(exc), "unstorable") from None

    def _snapshot_problems(self, logger: str, item: dict[Any, Any], snapshot: Snapshot) -> None:
        if snapshot.truncated:
            item["truncated"] = merge_truncated(item.get("truncated"), snapshot.truncated)
        for message in snapshot.problems:
            library_logger.warning("%s (logger %r)", message, logger)

    def _report_problem(self, message: str) -> None:
        library_logger.warning(message)
