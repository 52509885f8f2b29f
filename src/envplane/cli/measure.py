"""Run a command and measure it as an engine's trace would: peak RSS of its whole process tree,
CPU, I/O, wall time and exit code (``envplane observe wrap``).

The tree is sampled (every 10 ms for the first second, then every 50 ms; a short-lived child can
slip between samples), and the kernel's own figures fill what sampling misses: the largest
single descendant's maximum RSS and the CPU of every reaped descendant (``getrusage``). Read and
write bytes are the last counts seen of each process (``rchar`` / ``wchar``, as Nextflow
reports them). SIGINT and SIGTERM are passed on to the command; a command killed by a signal
exits 128 + N, as a shell reports it (an out-of-memory kill is 137).
"""

from __future__ import annotations

import contextlib
import resource
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import FrameType

import psutil


@dataclass(frozen=True)
class Measured:
    exit_code: int
    realtime_ms: int
    peak_rss: int
    cpu_percent: float  # 100 = one core busy for the whole run
    read_bytes: int
    write_bytes: int
    started_at: float
    completed_at: float


@contextlib.contextmanager
def _forwarding(process: subprocess.Popen[bytes]) -> Iterator[None]:
    def forward(signum: int, _frame: FrameType | None) -> None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def run(argv: Sequence[str]) -> Measured:
    """Run ``argv`` to its end (FileNotFoundError / PermissionError if it cannot start)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started_wall, started = time.time(), time.monotonic()
    process = subprocess.Popen(list(argv))
    root = psutil.Process(process.pid)
    peak = 0
    io: dict[int, tuple[int, int]] = {}
    with _forwarding(process):
        while process.poll() is None:
            total = 0
            try:
                tree = [root, *root.children(recursive=True)]
            except psutil.Error:
                tree = []
            for member in tree:
                try:
                    with member.oneshot():
                        total += member.memory_info().rss
                        counters = member.io_counters()
                    io[member.pid] = (counters.read_chars, counters.write_chars)
                except (psutil.Error, AttributeError):
                    continue
            peak = max(peak, total)
            time.sleep(0.01 if time.monotonic() - started < 1 else 0.05)
    elapsed = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    peak = max(peak, after.ru_maxrss * 1024)  # KiB on Linux: the largest single process
    code = process.returncode
    return Measured(
        exit_code=128 - code if code < 0 else code,
        realtime_ms=int(elapsed * 1000),
        peak_rss=peak,
        cpu_percent=round(100 * cpu / elapsed, 1) if elapsed > 0 else 0.0,
        read_bytes=sum(r for r, _ in io.values()),
        write_bytes=sum(w for _, w in io.values()),
        started_at=started_wall,
        completed_at=started_wall + elapsed,
    )
