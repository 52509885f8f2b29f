"""The provider contract: how a workflow engine gets an environment for each node variant.

A batch runner (``envplane.ray.RayBatchRunner``, or an engine of your own) asks a provider
for one environment per variant, then runs the variant with the runtime_env the provider
returns. Three providers keep this contract: ``GrpcEnvironmentProvider`` (a running daemon),
``LocalEnvironmentProvider`` (the same service in-process) and ``InMemoryEnvironmentProvider``
(a test double).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Protocol, Self, runtime_checkable

from envplane.environments.identity import EnvId
from envplane.errors import InvalidArgument


@dataclass(frozen=True)
class EnvironmentConfig:
    """What a variant needs. ``version_id`` tells variants of one node apart.

    ``ray=True`` asks for a Ray-ready env: the caller's ``ray==<version>`` is added to the
    packages, because Ray starts its workers with the env's own python, which must import the
    same ray as the driver.
    """

    workflow_id: str
    node_id: str
    version_id: str = ""
    packages: tuple[str, ...] = ()
    requirements: str = ""
    python_version: str = ""
    ray: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.packages, str):
            raise InvalidArgument(f"packages must be a list of requirement strings, got the string {self.packages!r}")
        if not all(isinstance(p, str) for p in self.packages):
            raise InvalidArgument(f"packages must be a list of requirement strings, got {list(self.packages)!r}")
        object.__setattr__(self, "packages", tuple(self.packages))
        for name in ("workflow_id", "node_id", "version_id", "requirements", "python_version"):
            if not isinstance(getattr(self, name), str):
                raise InvalidArgument(f"{name} must be a string, got {getattr(self, name)!r}")
        EnvId.parse(self.workflow_id, self.node_id, self.version_id)  # clear errors for bad ids

    @classmethod
    def of(cls, config: EnvironmentConfig | Mapping[str, Any]) -> EnvironmentConfig:
        """Accept the dataclass or a plain dict (``{"workflow_id": ..., "packages": [...]}``)."""
        if isinstance(config, EnvironmentConfig):
            return config
        if not isinstance(config, Mapping):
            raise InvalidArgument(f"config must be an EnvironmentConfig or a dict, got {type(config).__name__}")
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(config) - set(known))
        if unknown:
            raise InvalidArgument(f"unknown config key(s) {unknown}; known keys: {known}")
        missing = [name for name in ("workflow_id", "node_id") if not config.get(name)]
        if missing:
            raise InvalidArgument(f"config needs {' and '.join(missing)}")
        return cls(**config)

    @property
    def env_id(self) -> EnvId:
        return EnvId.parse(self.workflow_id, self.node_id, self.version_id)


@dataclass(frozen=True)
class EnvironmentInfo:
    """A variant's environment, ready to run in."""

    variant_id: str
    workflow_id: str
    node_id: str
    version_id: str
    status: str  # READY (providers return usable envs only)
    env_path: str  # the uv project folder: pyproject.toml, uv.lock, .venv
    venv_path: str
    python_executable: str
    python_version: str  # e.g. "3.11.7"
    lock_hash: str  # sha256 of uv.lock: equal hashes, identical pinned packages
    packages: tuple[str, ...] = ()  # declared requirements
    locked: Mapping[str, str] = field(default_factory=dict)  # package name -> pinned version

    @property
    def env_id(self) -> EnvId:
        return EnvId.parse(self.workflow_id, self.node_id, self.version_id)

    @property
    def ray_version(self) -> str:
        """The ray version pinned in the env ("" when the env has no ray)."""
        return self.locked.get("ray", "")


@runtime_checkable
class EnvironmentProvider(Protocol):
    """Environments per workflow node variant. Implementations are safe to call from threads."""

    def create_environment(self, variant_id: str, config: EnvironmentConfig | Mapping[str, Any]) -> EnvironmentInfo:
        """Create (or reuse, when the same spec exists already) the variant's environment."""
        ...

    def get_environment(self, variant_id: str) -> EnvironmentInfo:
        """The variant's environment as last created; ``NotFound`` for an unknown variant."""
        ...

    def get_runtime_env(
        self,
        variant_id: str,
        *,
        portable: bool = False,
        check_ray: bool = True,
    ) -> dict[str, Any]:
        """A Ray ``runtime_env``: ``py_executable`` (same host or shared filesystem) or, with
        ``portable=True``, the env's pinned requirements for Ray's ``uv`` field (any host)."""
        ...

    def cleanup_environment(self, variant_id: str) -> bool:
        """Delete the variant's environment; False when there was nothing to delete."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...


def check_variant_id(variant_id: str) -> str:
    if not isinstance(variant_id, str) or not variant_id.strip():
        raise InvalidArgument(f"variant_id must be a non-empty string, got {variant_id!r}")
    return variant_id
