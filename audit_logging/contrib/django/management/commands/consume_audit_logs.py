"""``python manage.py consume_audit_logs``: ``python -m audit_logging.consumer`` in a Django
project, with every flag of it (``--batch-size``, ``--consumer-name``, ``--flush-interval``,
``--from``, ``--metrics-port``, ...; ``--help`` lists them) and its settings from
``settings.AUDIT_LOGGING``, a variable set in the environment winning.

Exit status, as the consumer's: 0 after a clean stop (SIGTERM/SIGINT: what was read is
flushed and the offset stored), 1 when it had to stop without flushing, 2 for a bad flag or
setting (the message names it).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit_logging.consumer.__main__ import build_parser
from audit_logging.consumer.__main__ import main as consumer_main
from audit_logging.contrib.django.conf import library_environ
from audit_logging.contrib.django.management.forwarding import add_library_options, library_argv
from audit_logging.errors import ConfigurationError

EXIT_BAD_SETTING = 2
# The consumer's own loggers: its one line per batch and its reports.
CONSUMER_LOGGERS = ("audit_logging.consumer", "audit_logging.indexer")


class Command(BaseCommand):
    help = str(build_parser().description)
    # The project's system checks are about capture (handlers, middleware, hash key), which a
    # consumer does not do: a finding there must not keep the archive from being written, nor
    # turn the consumer's exit status into Django's 1.
    requires_system_checks = ()

    prog = "consume_audit_logs"

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        # What Django's usage line says ("manage.py consume_audit_logs"): the consumer's
        # messages name the command that was run.
        self.prog = parser.prog.strip()
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        add_library_options(parser, build_parser(), "the consumer's options")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            environ = library_environ()
        except ConfigurationError as exc:
            raise CommandError(str(exc), returncode=EXIT_BAD_SETTING) from None
        # A project's LOGGING often holds "audit_logging" at WARNING (the web app's capture
        # speaks only when something is wrong): --log-level still sets what the consumer
        # says, and LOGGING where it goes.
        for name in CONSUMER_LOGGERS:
            logging.getLogger(name).setLevel(options.get("log_level") or "INFO")
        code = consumer_main(
            library_argv(build_parser(), options),
            environ,
            prog=self.prog,
        )
        if code != 0:
            # The consumer said why on stderr; the status is what a supervisor acts on.
            sys.exit(code)
