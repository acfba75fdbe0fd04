"""Integrations with frameworks. Nothing else in audit_logging imports from here."""
