"""The provider contract, run unchanged against every provider (see conftest.py)."""

from __future__ import annotations

import importlib.metadata
import inspect
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from ray.runtime_env import RuntimeEnv

from envplane.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, RayNotReady
from envplane.providers import EnvironmentConfig, EnvironmentProvider
from tests.support.envcheck import version_in_env

RAY = importlib.metadata.version("ray")
DRIVER_MINOR = f"{sys.version_info.major}.{sys.version_info.minor}"


def config(wf: str, version: str = "v1", **extra: Any) -> dict[str, Any]:
    return {"workflow_id": wf, "node_id": "node", "version_id": version, "packages": ["alpha==1.0.0"], **extra}


PROTOCOL_METHODS = [
    "create_environment",
    "get_environment",
    "get_runtime_env",
    "cleanup_environment",
    "close",
    "__enter__",
    "__exit__",
]


@pytest.mark.parametrize("name", PROTOCOL_METHODS)
def test_implements_the_protocol_with_its_signatures(provider: EnvironmentProvider, name: str) -> None:
    """Not just the names (what a runtime_checkable isinstance looks at): the parameters, their
    kinds and defaults, as the Protocol declares them."""
    declared = inspect.signature(getattr(EnvironmentProvider, name))
    implemented = inspect.signature(getattr(type(provider), name))
    shape = [(p.name, p.kind, p.default) for p in declared.parameters.values()]
    assert [(p.name, p.kind, p.default) for p in implemented.parameters.values()] == shape


def test_closed_providers_refuse_every_call(provider: EnvironmentProvider, wf: str) -> None:
    provider.create_environment("v1", config(wf))
    provider.close()
    provider.close()  # safe twice
    for call in (
        lambda: provider.create_environment("v2", config(wf, "v2")),
        lambda: provider.get_runtime_env("v1", check_ray=False),
        lambda: provider.cleanup_environment("v1"),
    ):
        with pytest.raises(FailedPrecondition, match="is closed"):
            call()


def test_create_returns_a_ready_env(provider: EnvironmentProvider, wf: str) -> None:
    info = provider.create_environment("v1", config(wf))
    assert info.status == "READY"
    assert (info.variant_id, info.workflow_id, info.node_id, info.version_id) == ("v1", wf, "node", "v1")
    assert Path(info.python_executable).exists()
    assert info.python_version.startswith("3.11")
    assert re.fullmatch(r"[0-9a-f]{64}", info.lock_hash)
    assert dict(info.locked) == {"alpha": "1.0.0"}
    assert provider.get_environment("v1") == info


def test_the_env_python_imports_its_own_packages(provider: EnvironmentProvider, wf: str, real_env: None) -> None:
    info = provider.create_environment("v1", config(wf))
    assert version_in_env(info.python_executable, "alpha") == "1.0.0"
    assert Path(info.env_path, "uv.lock").is_file()


def test_dataclass_and_dict_configs_are_the_same(provider: EnvironmentProvider, wf: str) -> None:
    first = provider.create_environment("a", config(wf, "same"))
    second = provider.create_environment("b", EnvironmentConfig(wf, "node", "same", packages=("alpha==1.0.0",)))
    assert first.lock_hash == second.lock_hash and first.env_path == second.env_path


@pytest.mark.parametrize(
    ("variant", "bad", "fragment"),
    [
        ("", {}, "variant_id must be a non-empty string"),
        ("v", {"colour": "red"}, "unknown config key(s) ['colour']"),
        ("v", {"node_id": ""}, "config needs node_id"),
        ("v", {"packages": "alpha"}, "packages must be a list of requirement strings"),
        ("v", {"packages": ["alpha>>1"]}, "alpha>>1"),
        ("v", {"workflow_id": "bad id!"}, "workflow_id"),
    ],
)
def test_bad_input_is_invalid_argument(
    provider: EnvironmentProvider, wf: str, variant: str, bad: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        provider.create_environment(variant, {**config(wf), **bad})
    assert fragment in str(caught.value)
    with pytest.raises(NotFound):
        provider.get_environment(variant or "v")


def test_creating_again_reuses_and_a_changed_spec_conflicts(provider: EnvironmentProvider, wf: str) -> None:
    first = provider.create_environment("v1", config(wf))
    again = provider.create_environment("v1", config(wf))
    assert again.lock_hash == first.lock_hash and again.python_executable == first.python_executable
    with pytest.raises(AlreadyExists, match="already exists"):
        provider.create_environment("v1", config(wf, packages=["alpha==2.0.0"]))
    with pytest.raises(AlreadyExists, match="variant 'v1' is bound to environment"):
        provider.create_environment("v1", config(wf, "v2"))
    assert provider.get_environment("v1").lock_hash == first.lock_hash, "a refused create changes nothing"


def test_runtime_env_without_ray_says_what_is_missing(provider: EnvironmentProvider, wf: str) -> None:
    info = provider.create_environment("v1", config(wf))
    with pytest.raises(RayNotReady, match=rf"has no ray: .*ray=={re.escape(RAY)}; create it with ray=True"):
        provider.get_runtime_env("v1")
    runtime_env = provider.get_runtime_env("v1", check_ray=False)
    assert runtime_env["py_executable"] == info.python_executable
    RuntimeEnv(**runtime_env)  # Ray's own validation accepts it


def test_ray_ready_env_has_the_driver_ray_and_python(provider: EnvironmentProvider, wf: str) -> None:
    info = provider.create_environment("v1", config(wf, ray=True))
    assert info.ray_version == RAY
    assert ".".join(info.python_version.split(".")[:2]) == DRIVER_MINOR
    assert f"ray=={RAY}" in info.packages
    runtime_env = provider.get_runtime_env("v1")
    assert runtime_env == {"py_executable": info.python_executable, "env_vars": {"VIRTUAL_ENV": info.venv_path}}
    RuntimeEnv(**runtime_env)


def test_ray_ready_env_python_imports_that_ray(provider: EnvironmentProvider, wf: str, real_env: None) -> None:
    info = provider.create_environment("v1", config(wf, ray=True))
    assert version_in_env(info.python_executable, "ray") == RAY


def test_a_ray_pin_other_than_the_driver_is_refused(provider: EnvironmentProvider, wf: str) -> None:
    with pytest.raises(InvalidArgument, match=rf"driver runs ray=={re.escape(RAY)}"):
        provider.create_environment("v1", config(wf, packages=["ray==1.0.0"], ray=True))


def test_portable_runtime_env_pins_the_lock_without_ray(provider: EnvironmentProvider, wf: str) -> None:
    provider.create_environment("v1", config(wf, ray=True))
    runtime_env = provider.get_runtime_env("v1", portable=True)
    assert set(runtime_env) == {"uv"}
    packages = runtime_env["uv"]["packages"]
    assert "alpha==1.0.0" in packages
    assert not [p for p in packages if p.startswith("ray")], "Ray's uv plugin builds on the node's own ray"
    RuntimeEnv(**runtime_env)


def test_unknown_variants(provider: EnvironmentProvider) -> None:
    with pytest.raises(NotFound, match="unknown variant 'ghost': call create_environment first"):
        provider.get_runtime_env("ghost")
    assert provider.cleanup_environment("ghost") is False


def test_cleanup_removes_the_env(provider: EnvironmentProvider, wf: str, provider_kind: str) -> None:
    info = provider.create_environment("v1", config(wf))
    assert provider.cleanup_environment("v1") is True
    with pytest.raises(NotFound):
        provider.get_environment("v1")
    if provider_kind != "in_memory":
        assert not Path(info.env_path).exists()
    assert provider.cleanup_environment("v1") is False
    again = provider.create_environment("v1", config(wf, packages=["alpha==2.0.0"]))
    assert again.locked["alpha"] == "2.0.0", "after cleanup the ids are free for another spec"


def test_unresolvable_packages_fail_clearly(provider: EnvironmentProvider, wf: str, real_env: None) -> None:
    with pytest.raises(InvalidArgument, match="does-not-exist"):
        provider.create_environment("v1", config(wf, packages=["broken"]))
    with pytest.raises(NotFound):
        provider.get_environment("v1")
