"""The consumer: ``python -m audit_logging.consumer`` reads the stream, indexes every record
into OpenSearch and archives it as Parquet in S3, each exactly once (see ``service.py``).

Needs the ``consumer`` extra: ``pip install 'audit-logging-pipeline[consumer]'``.
"""

from __future__ import annotations

from audit_logging.consumer.options import ConsumerOptions, StartFrom, parse_start

__all__ = ["ConsumerOptions", "StartFrom", "parse_start"]
