"""Environments: reproducible per-node uv environments (create, deps, sync, export, cleanup)."""

from envplane.environments.identity import EnvId
from envplane.environments.service import EnvironmentService
from envplane.environments.views import EnvStatus, EnvView, OpStatus, Progress

__all__ = ["EnvId", "EnvStatus", "EnvView", "EnvironmentService", "OpStatus", "Progress"]
