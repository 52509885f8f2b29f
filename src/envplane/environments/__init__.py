"""Environments: reproducible per-node uv environments (create, deps, sync, export, cleanup)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from envplane.environments.identity import EnvId

if TYPE_CHECKING:
    from envplane.environments.service import EnvironmentService
    from envplane.environments.views import EnvStatus, EnvView, OpStatus, Progress

__all__ = ["EnvId", "EnvStatus", "EnvView", "EnvironmentService", "OpStatus", "Progress"]

# Imported on first use: clients and providers need EnvId and the id rules, not the service
# layer and SQLAlchemy behind it (seconds of start-up for a CLI call or a Ray driver).
_LAZY = {
    "EnvironmentService": "envplane.environments.service",
    "EnvStatus": "envplane.environments.views",
    "EnvView": "envplane.environments.views",
    "OpStatus": "envplane.environments.views",
    "Progress": "envplane.environments.views",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
