"""The consumer's light questions to OpenSearch and S3, asked of the real services: up while
they would take the consumer's writes, down when the bucket is gone, not merely when nothing
answers."""

from __future__ import annotations

import dataclasses

import pytest

from audit_logging.consumer.health import DependencyDown, opensearch_check, s3_check
from audit_logging.settings import Settings

pytestmark = [pytest.mark.services]


def test_both_answer_on_the_local_stack(settings: Settings) -> None:
    opensearch_check(settings)()
    s3_check(settings)()


def test_a_missing_bucket_is_down(settings: Settings) -> None:
    gone = dataclasses.replace(settings, s3_bucket="audit-logging-no-such-bucket-4b1d")
    with pytest.raises(DependencyDown, match="HTTP 404"):
        s3_check(gone)()


def test_nothing_listening_is_down(settings: Settings) -> None:
    from tests._ports import free_port

    nowhere = dataclasses.replace(settings, opensearch_host="127.0.0.1",
                                  opensearch_port=free_port())
    with pytest.raises(DependencyDown):
        opensearch_check(nowhere)()
