"""THE SHIM: what stands between a process service and the daemon, so the service outlives it.

Standard library only. The daemon runs it as ``python -I -S shim.py <service dir>``; it detaches
(a new session, led by the shim: the service's process group, not the daemon's child), waits
for the spec on its stdin (so it can be started ahead, while dependencies get ready), and:

* starts the service's command from the spec (its variables, work dir, and the user to run
  as: PostgreSQL refuses to run as root), with stdout and stderr on pipes of its own;
* writes ``pid`` (the service's pid and start time, then its own: the group's leader;
  atomically) once the service runs, or
  ``exit`` with ``error <why>`` when the command cannot start;
* writes every output line to ``service.log`` as ``<epoch ms> <o|e> <text>``, the line's own
  time, rotating at ``log_max_bytes`` into ``service.log.1`` … ``.<log_backups>``;
* writes ``exit`` (the exit code, or ``-N`` for signal N) when the service ends, then exits.

Why a shim and not pipes to the daemon: a service must survive a daemon that is killed (kill -9
included) so the next daemon can adopt it, and its output must keep going somewhere with the
line's own timestamp meanwhile. Why not plain redirection to a file: it gives no timestamps, no
clean rotation and no exit code for a service the daemon did not start itself. The shim ignores
the usual stop signals (they are for the service; the daemon sends SIGKILL to the whole group
when it means the shim) and leaves soon after the service even if a grandchild holds the pipes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import IO

ENDS_AFTER = 0.5  # seconds the shim keeps reading after the service exits (grandchildren may hold the pipes)


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def _default_signals() -> None:
    """In the child before exec: an ignored signal stays ignored across exec, so undo the shim's."""
    for number in STOP_SIGNALS:
        signal.signal(number, signal.SIG_DFL)


def start_time(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[19]
    except OSError:
        return ""


def write_atomic(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


class Log:
    """``service.log`` and its rotated copies; one lock for both streams."""

    def __init__(self, path: str, max_bytes: int, backups: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self.lock = threading.Lock()
        self.file = open(path, "ab")  # noqa: SIM115 (kept open: rotation swaps it)

    def write(self, tag: bytes, data: bytes) -> None:
        stamp = b"%d %s " % (int(time.time() * 1000), tag)
        with self.lock:
            self.file.write(stamp + data.rstrip(b"\n").replace(b"\r", b"") + b"\n")
            self.file.flush()
            if self.max_bytes and self.file.tell() >= self.max_bytes:
                self.rotate()

    def rotate(self) -> None:
        self.file.close()
        for n in range(self.backups - 1, 0, -1):
            older = f"{self.path}.{n}"
            if os.path.exists(older):
                os.replace(older, f"{self.path}.{n + 1}")
        if self.backups:
            os.replace(self.path, self.path + ".1")
        else:
            os.truncate(self.path, 0)
        self.file = open(self.path, "ab")  # noqa: SIM115


def pump(stream: IO[bytes], tag: bytes, log: Log) -> None:
    for line in iter(stream.readline, b""):
        log.write(tag, line)


def main(folder: str) -> int:
    # The spec arrives on stdin, when the daemon wants the service to start: the shim may be
    # started ahead (while the service's dependencies get ready), so its own start-up is off
    # the critical path. Nothing before EOF: the start was called off (or the daemon died).
    data = sys.stdin.buffer.read()
    if not data.strip():
        return 0
    spec = json.loads(data)
    for number in STOP_SIGNALS:
        signal.signal(number, signal.SIG_IGN)
    log = Log(os.path.join(folder, "service.log"), spec.get("log_max_bytes", 0), spec.get("log_backups", 0))
    exit_path = os.path.join(folder, "exit")
    user = spec.get("user") or None
    try:
        child = subprocess.Popen(
            spec["command"],
            env=spec["env"],
            cwd=spec.get("workdir") or None,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            user=user,
            group=spec.get("group") or None,
            extra_groups=[] if user else None,
            # the service gets the usual dispositions back, not the shim's ignored ones
            restore_signals=True,
            preexec_fn=_default_signals,
        )
    except (OSError, ValueError, KeyError, subprocess.SubprocessError) as exc:
        message = f"cannot start {spec.get('command', ['?'])[0]}: {exc}"
        log.write(b"e", message.encode())
        write_atomic(exit_path, "error " + message + "\n")
        return 127
    me = os.getpid()  # the group's leader: what the daemon kills last
    write_atomic(os.path.join(folder, "pid"), f"{child.pid} {start_time(child.pid)} {me} {start_time(me)}\n")
    pumps = [
        threading.Thread(target=pump, args=(child.stdout, b"o", log), daemon=True),
        threading.Thread(target=pump, args=(child.stderr, b"e", log), daemon=True),
    ]
    for thread in pumps:
        thread.start()
    code = child.wait()
    deadline = time.monotonic() + ENDS_AFTER
    for thread in pumps:
        thread.join(max(0.0, deadline - time.monotonic()))
    write_atomic(exit_path, f"{code}\n")
    return 0


def detach() -> None:
    """Leave the daemon: the process it started exits at once (it reaps that one in a moment),
    and the shim goes on in a new session as its group's leader, a child of init. The daemon
    then has no child to reap or to leave behind when it stops or dies."""
    if os.fork() > 0:
        os._exit(0)
    os.setsid()


if __name__ == "__main__":
    detach()
    sys.exit(main(sys.argv[1]))
