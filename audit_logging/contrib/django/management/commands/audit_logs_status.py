"""``python manage.py audit_logs_status``: ``python -m audit_logging status`` in a Django
project, with its flags (``--json``, ``--only``, ``--consumer-name``, ``--consumer-url``,
``--stale-after``) and its settings from ``settings.AUDIT_LOGGING``, a variable set in the
environment winning. Exit 0 when healthy, 1 when something is not, 2 for bad usage or a bad
setting.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit_logging.contrib.django.conf import library_environ
from audit_logging.contrib.django.management.forwarding import (
    TextTo,
    add_library_options,
    library_argv,
)
from audit_logging.errors import ConfigurationError
from audit_logging.status.command import EXIT_HEALTHY, EXIT_USAGE, parser
from audit_logging.status.command import main as status_main


class Command(BaseCommand):
    help = str(parser().description)
    # Status reports on the pipeline: a system check about capture must not hide its answer.
    requires_system_checks = ()

    def add_arguments(self, parser_: CommandParser) -> None:
        add_library_options(parser_, parser(), "status's options")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            environ = library_environ()
        except ConfigurationError as exc:
            raise CommandError(str(exc), returncode=EXIT_USAGE) from None
        with (
            contextlib.redirect_stdout(TextTo(self.stdout)),
            contextlib.redirect_stderr(TextTo(self.stderr)),
        ):
            code = status_main(library_argv(parser(), options), environ)
        if code != EXIT_HEALTHY:
            sys.exit(code)
