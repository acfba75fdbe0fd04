"""Drive the README's Django recipe in its own process (Django's settings are once per
process): migrate, log a user in and refund an order through Django's test client, print
what the test needs to check the records (``python -m tests.recipes.django_drive``)."""

from __future__ import annotations

import json

import django

PASSWORD = "recipe password 123"


def main() -> None:
    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.test import Client

    import audit_logging

    call_command("migrate", verbosity=0, interactive=False)
    user = User.objects.create_user("grace", password=PASSWORD)
    client = Client(REMOTE_ADDR="10.0.0.9", HTTP_X_FORWARDED_FOR="198.51.100.23",
                    HTTP_USER_AGENT="readme-django")
    login = client.post("/auth/login/", {"username": "grace", "password": PASSWORD},
                        headers={"X-Request-ID": "req-login"})
    refund = client.post("/orders/ord_5/refund", headers={"X-Request-ID": "req-refund"})
    print(json.dumps({
        "status": [login.status_code, refund.status_code],
        "request_id": refund["X-Request-ID"],
        "session": client.cookies["sessionid"].value,
        "user_id": str(user.pk),
        "unconfirmed": audit_logging.flush(timeout=30),
    }))


if __name__ == "__main__":
    main()
