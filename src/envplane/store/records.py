"""Plain, frozen records returned by the store: safe to pass between threads and faces."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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


@dataclass(frozen=True)
class OperationRecord:
    id: int
    workflow_id: str
    node_id: str
    version_id: str
    operation: str
    status: str
    started_at: float
    finished_at: float | None
    duration_ms: int | None
    stdout: str
    stderr: str
    exit_code: int | None
    error: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EventRecord:
    cursor: int
    type: str
    workflow_id: str
    node_id: str
    version_id: str
    occurred_at: float
    payload: dict[str, Any] = field(default_factory=dict)
