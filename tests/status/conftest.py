"""Fixtures for the status tests: real consumer processes, as the consumer tests start them."""

from tests.consumer.conftest import start_consumer

__all__ = ["start_consumer"]
