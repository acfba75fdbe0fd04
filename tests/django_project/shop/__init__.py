"""The test project's app: a few models to register for change capture."""
