"""What the environment service returns: immutable views the faces render."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from enum import StrEnum

from envplane.core.audit import OperationRecord
from envplane.core.progress import Progress as Progress
from envplane.core.progress import ProgressCallback as ProgressCallback
from envplane.environments.identity import EnvId
from envplane.environments.service.project import LockedPackage
from envplane.environments.service.records import EnvRecord


class EnvStatus(StrEnum):
    CREATING = "CREATING"  # a create is in flight; nothing usable yet
    READY = "READY"  # pyproject, lock and venv match the committed state
    FAILED = "FAILED"  # the last create failed; nothing on disk; create again or delete
    BROKEN = "BROKEN"  # committed files are there but the venv build is missing: sync


@dataclass(frozen=True)
class EnvView:
    id: EnvId
    record: EnvRecord
    env_path: str
    venv_path: str
    python_executable: str
    dependencies: list[str]
    busy_with: str = ""
    has_pyproject: bool = False
    has_lock: bool = False
    has_venv: bool = False
    reused: bool = False
    """Set by ``create(exist_ok=True)`` when an existing env with the same spec was returned."""

    @property
    def status(self) -> str:
        return self.record.status

    @property
    def lock_sha256(self) -> str:
        """Identifies the exact resolution: equal hashes mean identical pinned packages."""
        return _sha256(self.record.uv_lock)


@functools.lru_cache(maxsize=256)
def _sha256(text: str) -> str:
    """Hashed once per distinct lock: identical specs share one, and every view shows it."""
    return hashlib.sha256(text.encode()).hexdigest() if text else ""


@dataclass(frozen=True)
class OperationOutcome:
    env: EnvView
    operation: OperationRecord
    changes: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class DepsView:
    id: EnvId
    declared: list[str]
    locked: list[LockedPackage]


@dataclass(frozen=True)
class ExportView:
    id: EnvId
    pyproject_toml: str
    uv_lock: str
    requirements_txt: str


@dataclass(frozen=True)
class RunOutcome:
    """What code run with an env's interpreter did (RunCode)."""

    id: EnvId
    operation: OperationRecord
    exit_code: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class CleanupOutcome:
    removed: list[EnvId]
    builds_removed: list[str]
    dry_run: bool
    checked_at: float
