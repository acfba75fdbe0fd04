"""A real Django project the Django app is tested in: ``manage.py`` beside this file.

In-process tests share one configuration per process (Django's settings are set once):
:func:`tests.django_project.bootstrap.ensure_django` sets it up with this project's settings.
A test that needs other settings runs ``manage.py`` or a server in a subprocess.
"""
