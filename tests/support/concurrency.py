"""Real concurrent transactions: each call in its own thread, so its own connection."""

from __future__ import annotations

import threading

from django.core.exceptions import ValidationError
from django.db import connection


def race(calls) -> list[str]:
    """Run the calls at once, each in its own thread and connection; their outcomes."""
    barrier = threading.Barrier(len(calls))
    outcomes: list[str] = [""] * len(calls)

    def run(index, call):
        try:
            barrier.wait(timeout=30)
            call()
            outcomes[index] = "ok"
        except ValidationError as error:
            outcomes[index] = error.code
        except Exception as error:  # surfaced in the assertion message
            outcomes[index] = f"{type(error).__name__}: {error}"
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=pair) for pair in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return outcomes
