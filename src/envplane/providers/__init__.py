"""Environment providers: what a workflow engine calls to get an environment per node variant.

>>> from envplane.providers import GrpcEnvironmentProvider
>>> with GrpcEnvironmentProvider("127.0.0.1:50051") as provider:
...     info = provider.create_environment("variant-1", {
...         "workflow_id": "ml_pipeline", "node_id": "rag", "version_id": "v1",
...         "packages": ["httpx>=0.27"], "ray": True,
...     })
...     runtime_env = provider.get_runtime_env("variant-1")   # {"py_executable": ..., ...}

``LocalEnvironmentProvider`` runs the same service in-process (no daemon);
``InMemoryEnvironmentProvider`` is a test double for unit tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from envplane.client.retry import RetryPolicy
from envplane.errors import RayNotReady
from envplane.providers.contract import EnvironmentConfig, EnvironmentInfo, EnvironmentProvider
from envplane.providers.grpc_provider import GrpcEnvironmentProvider
from envplane.providers.in_memory import InMemoryEnvironmentProvider, ProviderCall

if TYPE_CHECKING:
    from envplane.providers.local_provider import LocalEnvironmentProvider

__all__ = [
    "EnvironmentConfig",
    "EnvironmentInfo",
    "EnvironmentProvider",
    "GrpcEnvironmentProvider",
    "InMemoryEnvironmentProvider",
    "LocalEnvironmentProvider",
    "ProviderCall",
    "RayNotReady",
    "RetryPolicy",
]


def __getattr__(name: str) -> Any:
    # The in-process provider pulls in the whole service layer (SQLAlchemy...): import on use.
    if name == "LocalEnvironmentProvider":
        from envplane.providers.local_provider import LocalEnvironmentProvider

        return LocalEnvironmentProvider
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
