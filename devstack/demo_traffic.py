"""Demo traffic for `make up`: a steady trickle of realistic audit events.

Several users log in (some fail), view, create, update, export and delete customers and
invoices, from a few addresses and browsers, through the real capture path (configure(),
the request context, log_audit_event and the logging handler).
"""

from __future__ import annotations

import argparse
import logging
import random
import signal
import time
import uuid
from types import FrameType

import audit_logging
from audit_logging.context import RequestContext, bind_context

USERS = [
    ("u-1001", "alice.martin"), ("u-1002", "bob.nguyen"), ("u-1003", "carla.rossi"),
    ("u-1004", "deepak.iyer"), ("u-1005", "eva.kowalska"), ("u-1006", "jöhn.smith"),
]
CLIENTS = [
    ("203.0.113.10", "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) Safari/605.1.15"),
    ("198.51.100.23", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/131.0 Safari/537.36"),
    ("2001:db8:85a3::8a2e:370:7334", "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Firefox/133.0"),
    ("192.0.2.77", "python-requests/2.32.3"),
]
CUSTOMERS = ["Acme GmbH", "Globex Corporation", "Initech", "Umbrella plc", "Société Générale",
             "東京商事", "Wayne Enterprises", "Stark Industries"]


def one_event(rng: random.Random) -> None:
    user_id, username = rng.choice(USERS)
    ip, agent = rng.choice(CLIENTS)
    context = RequestContext(ip_address=ip, user_agent=agent, request_id=uuid.uuid4().hex,
                             session_key="hmac-sha256:" + uuid.uuid4().hex * 2,
                             user_id=user_id, username=username)
    audit = logging.getLogger("audit")
    roll = rng.random()
    with bind_context(context):
        if roll < 0.12:
            audit.info("User logged in", extra={"action": "LOGIN"})
        elif roll < 0.16:
            audit.warning("Failed login: wrong password",
                          extra={"action": "LOGIN_FAILED", "user_id": None})
        elif roll < 0.45:
            number = rng.randint(1, 500)
            audit_logging.log_audit_event(
                action="VIEW", object_type="Customer", object_id=f"cus_{number:04d}",
                object_repr=rng.choice(CUSTOMERS))
        elif roll < 0.65:
            number = rng.randint(1, 500)
            old, new = f"billing{number}@example.com", f"finance{number}@example.com"
            audit_logging.log_audit_event(
                action="UPDATE", object_type="Customer", object_id=f"cus_{number:04d}",
                object_repr=rng.choice(CUSTOMERS), change_message="Changed the billing email",
                changes={"billing_email": [old, new]})
        elif roll < 0.80:
            number = rng.randint(1000, 9999)
            audit.info("Created invoice", extra={
                "action": "CREATE", "object_type": "Invoice", "object_id": f"inv_{number}",
                "object_repr": f"Invoice {number}: {rng.randint(50, 5000)} EUR"})
        elif roll < 0.90:
            audit_logging.log_audit_event(
                action="EXPORT", object_type="Report", object_id="monthly-revenue",
                change_message="Exported the monthly revenue report as CSV",
                extra={"rows": rng.randint(10, 2000), "format": "csv"})
        elif roll < 0.96:
            number = rng.randint(1000, 9999)
            audit_logging.log_audit_event(
                action="DELETE", object_type="Invoice", object_id=f"inv_{number}",
                change_message="Voided a duplicate invoice")
        else:
            audit.info("User logged out", extra={"action": "LOGOUT"})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=5.0, help="events per second")
    parser.add_argument("--count", type=int, default=0, help="stop after this many (0: never)")
    parser.add_argument("--metrics-port", type=int, default=0,
                        help="serve the capture metrics on 127.0.0.1 at this port (0: not)")
    args = parser.parse_args()
    audit_logging.configure(source="demo-shop")
    if args.metrics_port:
        # As an app would: its handler's counts, exported from the default registry.
        import prometheus_client

        from audit_logging.metrics.capture import register_capture_metrics

        register_capture_metrics()
        prometheus_client.start_http_server(args.metrics_port, addr="127.0.0.1")
    stop = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    rng = random.Random()  # noqa: S311 - demo data, not security
    sent = 0
    while not stop and (args.count == 0 or sent < args.count):
        one_event(rng)
        sent += 1
        time.sleep(rng.expovariate(args.rate))
    audit_logging.shutdown(timeout=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
