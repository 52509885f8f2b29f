"""What every provider shares: the variant registry, config handling, runtime_env building,
the repair of a reused env whose venv build is gone, the assembly of ``EnvironmentInfo``, and
being closed.

A subclass says how to create (or reuse), sync, delete and export one environment and read its
pins, in the environment's own terms (:class:`EnvState`); this class keeps which variant is
bound to which environment (thread-safe: runners create envs from many threads).
"""

from __future__ import annotations

import dataclasses
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from envplane.environments.identity import EnvId
from envplane.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from envplane.providers import ray_env
from envplane.providers.contract import EnvironmentConfig, EnvironmentInfo, check_variant_id


@dataclass(frozen=True)
class EnvState:
    """An environment as a provider's primitive returns it, whatever it talks to."""

    status: str  # READY | BROKEN (| CREATING | FAILED)
    env_path: str
    venv_path: str
    python_executable: str
    python_version: str
    lock_hash: str
    packages: tuple[str, ...]


class ProviderBase:
    """Implements the provider contract over the primitives ``_create`` ... ``_close``."""

    def __init__(self, *, portable_install_options: Sequence[str] = ()) -> None:
        # Passed to Ray's `uv pip install` in portable runtime_envs, e.g. an index URL.
        self.portable_install_options = list(portable_install_options)
        self._variants: dict[str, EnvironmentInfo] = {}
        self._locked_by_hash: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()
        self._closed = False

    # -- the primitives a provider implements
    def _create(self, variant_id: str, config: EnvironmentConfig) -> EnvState:
        """Create the env, or return the one made from the same spec (``exist_ok``)."""
        raise NotImplementedError

    def _sync(self, env: EnvId) -> EnvState:
        """Rebuild the env's venv from its lock."""
        raise NotImplementedError

    def _locked(self, env: EnvId) -> dict[str, str]:
        """Pinned versions: package name -> version."""
        raise NotImplementedError

    def _delete(self, env: EnvId) -> bool:
        raise NotImplementedError

    def _requirements_txt(self, env: EnvId) -> str:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError

    def _check_open(self) -> None:
        if self._closed:
            raise FailedPrecondition(f"this {type(self).__name__} is closed")

    def _create_info(self, variant_id: str, config: EnvironmentConfig) -> EnvironmentInfo:
        env = config.env_id
        state = self._create(variant_id, config)
        if state.status == "BROKEN":  # reused, but its venv build is gone: rebuild it
            state = self._sync(env)
        return EnvironmentInfo(
            variant_id=variant_id,
            workflow_id=env.workflow_id,
            node_id=env.node_id,
            version_id=env.version_id,
            status=state.status,
            env_path=state.env_path,
            venv_path=state.venv_path,
            python_executable=state.python_executable,
            python_version=state.python_version,
            lock_hash=state.lock_hash,
            packages=state.packages,
            locked=self._locked_packages(state.lock_hash, lambda: self._locked(env)),
        )

    def _locked_packages(self, lock_hash: str, fetch: Callable[[], dict[str, str]]) -> dict[str, str]:
        """Pinned versions of a lock, fetched once per distinct lock: the pins follow from the
        lock, so a reused env (same hash) costs one call instead of two."""
        with self._lock:
            known = self._locked_by_hash.get(lock_hash)
        if known is None:
            known = fetch()
            with self._lock:
                if len(self._locked_by_hash) > 1024:
                    self._locked_by_hash.clear()
                self._locked_by_hash[lock_hash] = known
        return dict(known)

    # -- the contract
    def create_environment(self, variant_id: str, config: EnvironmentConfig | Mapping[str, Any]) -> EnvironmentInfo:
        self._check_open()
        check_variant_id(variant_id)
        config = EnvironmentConfig.of(config)
        if config.ray:
            config = _with_ray(config)
        with self._lock:
            bound = self._variants.get(variant_id)
        if bound is not None and bound.env_id != config.env_id:
            raise AlreadyExists(
                f"variant {variant_id!r} is bound to environment {bound.env_id}, not {config.env_id}; "
                "call cleanup_environment first"
            )
        info = self._create_info(variant_id, config)
        with self._lock:
            self._variants[variant_id] = info
        return info

    def get_environment(self, variant_id: str) -> EnvironmentInfo:
        with self._lock:
            info = self._variants.get(variant_id)
        if info is None:
            raise NotFound(f"unknown variant {variant_id!r}: call create_environment first")
        return info

    def get_runtime_env(self, variant_id: str, *, portable: bool = False, check_ray: bool = True) -> dict[str, Any]:
        self._check_open()
        info = self.get_environment(variant_id)
        if portable:
            return ray_env.portable_runtime_env(self._requirements_txt(info.env_id), self.portable_install_options)
        if check_ray:
            ray_env.check_ray_ready(info)
        return ray_env.local_runtime_env(info)

    def cleanup_environment(self, variant_id: str) -> bool:
        self._check_open()
        with self._lock:
            info = self._variants.get(variant_id)
        if info is None:
            return False
        try:
            removed = self._delete(info.env_id)
        except NotFound:
            removed = False
        with self._lock:
            self._variants.pop(variant_id, None)
        return removed

    def close(self) -> None:
        """Release what the provider holds (safe twice); every later call is FailedPrecondition."""
        if not self._closed:
            self._closed = True
            self._close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _with_ray(config: EnvironmentConfig) -> EnvironmentConfig:
    """Add the caller's ray, and default to the caller's Python minor version."""
    wanted = ray_env.ray_requirement()  # raises when the caller has no ray
    version = ray_env.driver_ray_version()
    others: list[str] = []
    declared: list[str] = []
    for spec in config.packages:
        requirement = _requirement_or_none(spec)
        is_ray = requirement is not None and canonicalize_name(requirement.name) == "ray"
        (declared if is_ray else others).append(spec)
    if any(not Requirement(spec).specifier.contains(version) for spec in declared):
        raise InvalidArgument(f"packages ask for {declared} but the driver runs {wanted}: Ray needs the same")
    packages = (*others, wanted)  # a compatible range becomes the exact pin
    python = config.python_version or f"{sys.version_info.major}.{sys.version_info.minor}"
    return dataclasses.replace(config, packages=packages, python_version=python)


def _requirement_or_none(spec: str) -> Requirement | None:
    """Bad specs are left for the service to reject with its own message."""
    try:
        return Requirement(spec)
    except InvalidRequirement:
        return None
