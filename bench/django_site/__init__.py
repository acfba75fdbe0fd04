"""The Django project that ``bench/bench_django.py`` serves under gunicorn: one model and one
view that changes it, with the audit variant (``BENCH_DJANGO_VARIANT``) chosen per server."""
