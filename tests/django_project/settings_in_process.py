"""The test project's settings for Django set up inside the pytest process
(:func:`tests.django_project.bootstrap.ensure_django`): the project's own, except that
Django leaves the process's logging alone (``LOGGING`` would set ``propagate`` False on the
library's loggers for every later test, hiding their lines from ``caplog``) and capture
configured by ``ready()`` keeps to a stream and a spool folder of its own. Tests that run the
project as a project (``manage.py``, a server) use ``settings``."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from tests.django_project.settings import *  # noqa: F403
from tests.django_project.settings import AUDIT_LOGGING

LOGGING_CONFIG = None

AUDIT_LOGGING = {
    **AUDIT_LOGGING,
    "RABBITMQ_STREAM_NAME": "django-test-project-in-process",
    "AUDIT_LOG_SPOOL_DIR": str(
        Path(tempfile.gettempdir()) / f"django-test-project-spool-{os.getpid()}"
    ),
}
