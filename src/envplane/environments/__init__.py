"""Environments: reproducible per-node uv environments (create, deps, sync, export, cleanup).

The slice, top to bottom: ``capability.py`` (how the daemon plugs it in), ``faces/`` (the gRPC
servicer, the REST router, the UV Venv Manager protocol), ``handlers.py`` (one function per
RPC, shared by both faces), ``messages.py`` (views -> envplane.v1 messages), ``service/`` (the
operations). ``identity.py``, ``specs.py`` and ``wire.py`` are the capability's vocabulary, light
enough for clients and providers to import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from envplane.environments.identity import EnvId

if TYPE_CHECKING:
    from envplane.environments.service import EnvironmentService, EnvStatus, EnvView, ProjectFiles
    from envplane.environments.service.views import Progress

__all__ = ["EnvId", "EnvStatus", "EnvView", "EnvironmentService", "Progress", "ProjectFiles"]

# Imported on first use: clients and providers need EnvId and the id rules, not the service
# layer and SQLAlchemy behind it (seconds of start-up for a CLI call or a Ray driver).
_LAZY = {
    "EnvironmentService": "envplane.environments.service",
    "EnvStatus": "envplane.environments.service",
    "EnvView": "envplane.environments.service",
    "ProjectFiles": "envplane.environments.service",
    "Progress": "envplane.core.progress",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
