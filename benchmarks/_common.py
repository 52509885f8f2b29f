"""What the benchmarks share: a real daemon subprocess, raw uv, a timer."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from envplane.environments.service.uv import find_uv_binary

UV = find_uv_binary(None)
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


class Daemon:
    """`python -m envplane serve` on ephemeral ports in a fresh data dir."""

    def __init__(self, root: Path, cache: Path) -> None:
        self.data = Path(tempfile.mkdtemp(dir=root, prefix="envplane-"))
        env = {
            **os.environ,
            "ENVPLANE_DATA_DIR": str(self.data),
            "ENVPLANE_GRPC_ADDR": "127.0.0.1:0",
            "ENVPLANE_HTTP_ADDR": "127.0.0.1:0",
            "ENVPLANE_UV_CACHE_DIR": str(cache),
            "ENVPLANE_DEFAULT_PYTHON": PYTHON,
            "ENVPLANE_LOG_LEVEL": "warning",
        }
        self.proc = subprocess.Popen([sys.executable, "-m", "envplane", "serve"], env=env)
        state = self.data / "daemon.json"
        for _ in range(600):
            if state.exists():
                self.addr = f"127.0.0.1:{json.loads(state.read_text())['grpc_port']}"
                return
            time.sleep(0.05)
        raise RuntimeError("daemon did not start")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        shutil.rmtree(self.data, ignore_errors=True)


def raw_uv_create(venv: Path, packages: list[str], cache: Path) -> None:
    env = {**os.environ, "UV_CACHE_DIR": str(cache), "UV_PYTHON_DOWNLOADS": "never", "UV_NO_PROGRESS": "1"}
    subprocess.run([UV, "venv", "-q", str(venv), "--python", PYTHON], check=True, env=env)
    subprocess.run([UV, "pip", "install", "-q", "--python", str(venv), *packages], check=True, env=env)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
