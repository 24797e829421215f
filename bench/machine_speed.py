"""How fast this machine runs Python right now, printed beside a bench's figures.

The shared 2-core machine the benches are measured on switches between two speeds, idle and
with no steal time, for seconds to minutes at a time (2026-12-07: the loop below took 0.48 s
of CPU, or 0.85 s, twelve runs in a row giving both). A figure taken while it is slow is not a
regression: compare figures with similar loop times before and after, and repeat a run whose
two loop times differ.
"""

from __future__ import annotations

import time


def loop_seconds() -> float:
    """The CPU seconds of a fixed pure-Python loop (sum of thirty million integers)."""
    started = time.process_time()
    sum(range(30_000_000))
    return time.process_time() - started


def machine_line(when: str) -> str:
    return f"machine {when}: a fixed Python loop took {loop_seconds():.2f} s of CPU"
