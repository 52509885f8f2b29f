"""Helpers that look at an environment from outside: run its python, snapshot its files."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def run_in_env(python: str, code: str) -> str:
    """Run ``code`` with the env's interpreter; return stdout (raises on failure)."""
    result = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def version_in_env(python: str, module: str) -> str:
    return run_in_env(python, f"import {module}; print({module}.__version__)")


def importable(python: str, module: str) -> bool:
    result = subprocess.run([python, "-c", f"import {module}"], capture_output=True, timeout=60)
    return result.returncode == 0


def snapshot(env_path: str) -> dict[str, str]:
    """The env folder's files and where its .venv link points: equal snapshots = same state."""
    folder = Path(env_path)
    return {
        "pyproject.toml": (folder / "pyproject.toml").read_text(),
        "uv.lock": (folder / "uv.lock").read_text(),
        ".venv": os.readlink(folder / ".venv"),
    }
