"""``InMemoryEnvironmentProvider``: a test double for your own unit tests.

It keeps the provider contract's bookkeeping and validation (ids, package specs, variant
binding, reuse versus conflict, Ray checks) but creates nothing: every environment *is* the
current interpreter, and no file is read or written. Use it to test code that drives a
provider without uv, a daemon or disk.

Its documented limits (the shared contract tests skip these for it):
- packages are not installed or resolved: ``locked`` lists only ``name==version`` pins given
  in the config, and an unresolvable package is not detected (use ``failures`` instead);
- ``env_path``/``venv_path`` are ``sys.prefix``; ``lock_hash`` hashes the spec, not a uv.lock;
- the portable runtime_env lists the declared packages as they were given.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from packaging.requirements import Requirement

from envplane.environments.identity import EnvId
from envplane.environments.specs import collect_specs
from envplane.errors import AlreadyExists, EnvplaneError
from envplane.providers.base import EnvState, ProviderBase
from envplane.providers.contract import EnvironmentConfig, EnvironmentInfo


@dataclass(frozen=True)
class ProviderCall:
    """One recorded call: the method name, the variant and (for creates) the config."""

    method: str
    variant_id: str
    config: EnvironmentConfig | None = None
    options: dict[str, Any] = field(default_factory=dict)


class InMemoryEnvironmentProvider(ProviderBase):
    """Test double. ``failures`` maps a variant id to the exception its create raises."""

    def __init__(self, *, failures: Mapping[str, EnvplaneError] | None = None) -> None:
        super().__init__()
        self.failures = dict(failures or {})
        self.calls: list[ProviderCall] = []
        self._specs: dict[tuple[str, str, str], tuple[str, ...]] = {}

    def _record(self, call: ProviderCall) -> None:
        self._check_open()
        with self._lock:
            self.calls.append(call)

    # Record every contract call, then let the shared logic run.
    def create_environment(self, variant_id: str, config: EnvironmentConfig | Mapping[str, Any]) -> EnvironmentInfo:
        self._record(ProviderCall("create_environment", variant_id, _config_or_none(config)))
        return super().create_environment(variant_id, config)

    def get_runtime_env(self, variant_id: str, *, portable: bool = False, check_ray: bool = True) -> dict[str, Any]:
        self._record(ProviderCall("get_runtime_env", variant_id, options={"portable": portable}))
        return super().get_runtime_env(variant_id, portable=portable, check_ray=check_ray)

    def cleanup_environment(self, variant_id: str) -> bool:
        self._record(ProviderCall("cleanup_environment", variant_id))
        return super().cleanup_environment(variant_id)

    def _create(self, variant_id: str, config: EnvironmentConfig) -> EnvState:
        if variant_id in self.failures:
            raise self.failures[variant_id]
        specs = collect_specs(config.packages, config.requirements)  # the daemon's own validation
        spec = tuple(sorted(str(s) for s in specs))
        env = config.env_id
        with self._lock:
            existing = self._specs.get(env.key)
            if existing is not None and existing != spec:
                raise AlreadyExists(f"environment {env} already exists with a different spec: {list(existing)}")
            self._specs[env.key] = spec
        return EnvState(
            status="READY",
            env_path=sys.prefix,
            venv_path=sys.prefix,
            python_executable=sys.executable,
            python_version=platform.python_version(),
            lock_hash=hashlib.sha256(json.dumps(spec).encode()).hexdigest(),
            packages=spec,
        )

    def _sync(self, env: EnvId) -> EnvState:  # pragma: no cover - the double's envs are never BROKEN
        raise AssertionError("the in-memory double has no venv builds to lose")

    def _locked(self, env: EnvId) -> dict[str, str]:
        with self._lock:
            return _pins(self._specs.get(env.key, ()))

    def _delete(self, env: EnvId) -> bool:
        with self._lock:
            return self._specs.pop(env.key, None) is not None

    def _requirements_txt(self, env: EnvId) -> str:
        with self._lock:
            return "\n".join(self._specs.get(env.key, ())) + "\n"

    def _close(self) -> None:
        return None


def _config_or_none(config: EnvironmentConfig | Mapping[str, Any]) -> EnvironmentConfig | None:
    try:
        return EnvironmentConfig.of(config)
    except EnvplaneError:
        return None


def _pins(spec: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for text in spec:
        requirement = Requirement(text)
        pinned = [s.version for s in requirement.specifier if s.operator == "=="]
        if pinned:
            out[requirement.name] = pinned[0]
    return out
