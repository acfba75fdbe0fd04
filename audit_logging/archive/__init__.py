"""The Parquet archive in S3, the source of truth: its layout, its files, and reading it back.

The consumer writes it (:mod:`audit_logging.consumer.archiver`); the API, the
``python -m audit_logging.archive`` commands and other engines read it.
"""
