"""Prometheus metrics of the capture side, the consumer and the API.

The names and their meaning are in :mod:`audit_logging.metrics.catalogue`; exporting them
needs the ``metrics`` extra (prometheus-client). Capture keeps its counts whether or not the
extra is installed, so an app without it loses nothing but the export.
"""
