"""How many threads llama.cpp should use: the cores that other work is not already using."""

from __future__ import annotations

import os

__all__ = ["available_cores", "busy_cores", "default_threads"]


def available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """Threads for llama.cpp: the available cores that other work is not already using.

    llama.cpp's worker threads meet at a barrier after every step, so on cores that are busy
    with other processes one descheduled thread stalls the rest: on this project's shared
    2-core machine, 2 threads under load ran 5-20x slower than 1. An idle machine gets them all.
    """
    cores = available_cores()
    return max(1, min(cores, cores - busy_cores()))


def busy_cores() -> int:
    """Cores other work is using now: the smaller of the 1-minute load and the runnable tasks.

    The load average alone would count this process's own previous round as other work; the
    instantaneous runnable count (minus the caller) does not.
    """
    try:
        with open("/proc/loadavg") as handle:
            fields = handle.read().split()
        load, running = float(fields[0]), int(fields[3].split("/")[0]) - 1
        return max(0, int(min(load, running) + 0.5))
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.getloadavg()[0] + 0.5)
    except (AttributeError, OSError):
        return 0
