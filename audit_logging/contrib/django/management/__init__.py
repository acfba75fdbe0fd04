"""The app's management commands (``manage.py consume_audit_logs``, ``audit_logs_status``)."""
