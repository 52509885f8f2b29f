"""Real daemons for tests: in a background thread (fast) or as a subprocess (for kill -9)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from envplane.config import Settings
from envplane.server import STATE_FILE, Daemon
from tests.support.waiting import eventually


@dataclass
class ThreadDaemon:
    """A real daemon (gRPC + REST on loopback) running its own event loop in a thread."""

    settings: Settings
    daemon: Daemon | None = None
    loop: asyncio.AbstractEventLoop | None = None
    thread: threading.Thread | None = None

    def start(self) -> ThreadDaemon:
        started = threading.Event()
        failure: list[BaseException] = []

        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            self.daemon = Daemon(self.settings)
            task = asyncio.ensure_future(self.daemon.run(install_signal_handlers=False))
            serving = asyncio.ensure_future(self.daemon.serving())
            await asyncio.wait({task, serving}, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                serving.cancel()
                task.result()  # a start-up failure: raised to start() by target()
            started.set()
            await task

        def target() -> None:
            try:
                asyncio.run(main())
            except BaseException as exc:  # surfaced to the test through start()
                failure.append(exc)
                started.set()

        self.thread = threading.Thread(target=target, name="envplane-test-daemon", daemon=True)
        self.thread.start()
        started.wait(60)
        if failure:
            raise failure[0]
        return self

    @property
    def grpc_addr(self) -> str:
        assert self.daemon is not None
        return f"127.0.0.1:{self.daemon.grpc_port}"

    @property
    def http_url(self) -> str:
        assert self.daemon is not None
        return f"http://127.0.0.1:{self.daemon.http_port}"

    def stop(self) -> None:
        """Stop it and wait (safe twice)."""
        if self.loop and self.daemon and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.daemon.request_stop)
        if self.thread:
            self.thread.join(30)


@dataclass
class ProcessDaemon:
    """``python -m envplane serve`` as a child process, for crash (kill -9) tests."""

    @classmethod
    def of(cls, settings: Settings) -> ProcessDaemon:
        """A daemon (not started) with these settings as its ``ENVPLANE_*`` variables."""
        from tests.support.settings import as_environment

        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return cls(as_environment(settings), settings.data_dir)

    def stop_if_running(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.stop()

    env: dict[str, str]
    data_dir: Path
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    def start(self, timeout: float = 60) -> ProcessDaemon:
        state = self.data_dir / STATE_FILE
        state.unlink(missing_ok=True)
        self.log_path = self.data_dir.parent / f"daemon-{time.monotonic_ns()}.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "envplane", "serve"],
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        proc = self.proc

        def started() -> dict[str, int] | None:
            if proc.poll() is not None:
                raise AssertionError(f"daemon exited early:\n{self.log()}")
            data: dict[str, int] = json.loads(state.read_text())  # not there yet: retried
            return data if data["pid"] == proc.pid else None

        data = eventually(started, timeout=timeout, what=f"the daemon to start; its log:\n{self.log()}")
        self.grpc_addr = f"127.0.0.1:{data['grpc_port']}"
        self.http_url = f"http://127.0.0.1:{data['http_port']}"
        return self

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path and self.log_path.exists() else ""

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode
