"""A dict another thread keeps changing while the app logs it: "dictionary changed size
during iteration" must not reach the app, and the record holds one consistent reading."""

import threading
from typing import Any

STOP = threading.Event()


def make_extra() -> dict[str, Any]:
    shared: dict[str, Any] = {f"k{i}": [i] for i in range(200)}

    def churn() -> None:
        n = 0
        while not STOP.is_set():
            shared[f"new{n % 500}"] = {"n": [n]}
            shared.pop(f"new{(n + 250) % 500}", None)
            n += 1

    threading.Thread(target=churn, daemon=True).start()
    return {"action": "UPDATE", "extra": shared}


def cleanup() -> None:
    STOP.set()


REPEAT = 200
EXPECT: dict[str, Any] = {}
