"""The plain, frozen copy of an environment row the service works with (safe across threads)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EnvRecord:
    workflow_id: str
    node_id: str
    version_id: str
    status: str
    python_request: str
    python_version: str
    interpreter: str
    build_id: str
    pyproject_toml: str
    uv_lock: str
    error: str
    created_at: float
    updated_at: float
    last_used_at: float
