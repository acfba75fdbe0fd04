"""Clients for the real local stack, for tests and their fixtures."""

from __future__ import annotations

import uuid
from typing import Any

from audit_logging.settings import Settings


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def delete_stream(settings: Settings, name: str) -> None:
    from rstream import Producer

    producer = Producer(
        settings.rabbitmq_stream_host,
        settings.rabbitmq_stream_port,
        vhost=settings.rabbitmq_stream_vhost,
        username=settings.rabbitmq_stream_user,
        password=settings.rabbitmq_stream_password.get(),
    )
    try:
        await producer.delete_stream(name, missing_ok=True)
    finally:
        await producer.close()


def opensearch_client(settings: Settings) -> Any:
    from opensearchpy import OpenSearch

    return OpenSearch(
        hosts=[{"host": settings.opensearch_host, "port": settings.opensearch_port}],
        use_ssl=settings.opensearch_use_ssl,
        verify_certs=settings.opensearch_verify_certs,
        timeout=60,
    )


def s3_client(settings: Settings) -> Any:
    import boto3

    secret = settings.aws_secret_access_key
    return boto3.client(
        "s3",
        endpoint_url=settings.aws_endpoint_url_s3,
        region_name=settings.aws_region_name,
        aws_access_key_id=settings.aws_access_key_id,
        aws_secret_access_key=secret.get() if secret else None,
    )
