"""Fixtures for the hostile corpus's runners: the consumer runner starts real consumer
processes the way the consumer tests do; the query runner serves the API over this test's
own index, as the API tests do."""

from tests.api.conftest import (
    api_settings,
    app,
    audit_capture,
    client,
    index_records,
    os_client,
    token,
)
from tests.consumer.conftest import start_consumer

__all__ = [
    "api_settings",
    "app",
    "audit_capture",
    "client",
    "index_records",
    "os_client",
    "start_consumer",
    "token",
]
