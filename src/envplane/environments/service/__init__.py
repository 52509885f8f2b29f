"""The service layer of the environments capability: the operations and everything they run on.
It imports no transport code (no gRPC, no FastAPI, no generated messages): the faces call it."""

from envplane.environments.service.create import ProjectFiles
from envplane.environments.service.environment_service import EnvironmentService
from envplane.environments.service.events import EventType
from envplane.environments.service.views import EnvStatus, EnvView

__all__ = ["EnvStatus", "EnvView", "EnvironmentService", "EventType", "ProjectFiles"]
