"""Reading a worker's memory from ``/proc``: the RSS watchdog's only source.

``statm`` is one small read per worker per tick (the watchdog runs every 100 ms); ``VmHWM``
is the kernel's own high-water mark of the resident set, so a peak between two ticks is still
reported. Only the worker process is counted, not children its handler spawned (a cgroup
would count those; see the README on memory limits).
"""

from __future__ import annotations

import os

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss(pid: int) -> int:
    """Resident set size in bytes; 0 once the process is gone."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def peak_rss(pid: int) -> int:
    """The process's peak resident set (``VmHWM``) in bytes; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        return 0
    return 0
