"""The Django app: add ``"audit_logging.contrib.django"`` to ``INSTALLED_APPS``.

It reads ``settings.AUDIT_LOGGING``, configures capture once when Django starts, binds each
request's context (:mod:`.middleware`), records logins and logouts, records the changes of
the models given to :func:`register` (bulk writes included), and adds the management commands
``consume_audit_logs`` and ``audit_logs_status``. Needs the ``[django]`` extra.
"""
