"""Fixtures for the hostile corpus's runners: the consumer runner starts real consumer
processes the way the consumer tests do."""

from tests.consumer.conftest import start_consumer

__all__ = ["start_consumer"]
