"""Ray ``runtime_env`` dicts for an environment, and the checks that make them safe to use.

Ray starts a task's worker with ``py_executable`` and runs Ray's own worker script in it, so
that interpreter must import the *same* ray version, on the same Python minor version, as the
driver. When it cannot, Ray does not fail: the worker dies at start-up and the task waits
forever. Hence the checks here, before anything is submitted.
"""

from __future__ import annotations

import functools
import importlib.metadata
import sys
from collections.abc import Sequence
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from envplane.errors import RayNotReady
from envplane.providers.contract import EnvironmentInfo


@functools.cache
def driver_ray_version() -> str:
    """The ray installed beside the caller ("" when there is none). Cached: reading package
    metadata takes milliseconds, and a running driver does not change its ray."""
    try:
        return importlib.metadata.version("ray")
    except importlib.metadata.PackageNotFoundError:
        return ""


def ray_requirement() -> str:
    version = driver_ray_version()
    if not version:
        raise RayNotReady("a Ray-ready env needs ray installed beside the caller (pip install 'envplane[ray]')")
    return f"ray=={version}"


def check_ray_ready(info: EnvironmentInfo) -> None:
    """Raise ``RayNotReady`` naming the fix unless Ray can start workers in this env."""
    driver = driver_ray_version()
    needed = f"ray=={driver}" if driver else "the driver's ray version"
    if not info.ray_version:
        raise RayNotReady(
            f"environment {info.env_id} (variant {info.variant_id!r}) has no ray: Ray starts workers with the "
            f"env's python, which must import {needed}; create it with ray=True to add it"
        )
    if driver and info.ray_version != driver:
        raise RayNotReady(
            f"environment {info.env_id} (variant {info.variant_id!r}) has ray {info.ray_version} but the driver "
            f"runs ray {driver}; Ray needs the same version on both sides: recreate it with ray=True"
        )
    env_minor = ".".join(info.python_version.split(".")[:2])
    driver_minor = f"{sys.version_info.major}.{sys.version_info.minor}"
    if env_minor != driver_minor:
        raise RayNotReady(
            f"environment {info.env_id} (variant {info.variant_id!r}) runs Python {info.python_version} but the "
            f"driver runs {driver_minor}; Ray needs the same Python minor version: set python_version={driver_minor!r}"
        )


def local_runtime_env(info: EnvironmentInfo) -> dict[str, Any]:
    """Run in the env's own interpreter: same host, or a filesystem every node shares."""
    return {"py_executable": info.python_executable, "env_vars": {"VIRTUAL_ENV": info.venv_path}}


def portable_runtime_env(requirements_txt: str, install_options: Sequence[str] = ()) -> dict[str, Any]:
    """Let Ray rebuild the env on any node with its ``uv`` plugin, from the locked pins.

    ray itself is left out: Ray's uv plugin builds on the node's own ray installation."""
    uv: dict[str, Any] = {"packages": pinned_requirements(requirements_txt, exclude=("ray",))}
    if install_options:
        uv["uv_pip_install_options"] = list(install_options)
    return {"uv": uv}


def pinned_requirements(requirements_txt: str, *, exclude: Sequence[str] = ()) -> list[str]:
    """``name==version ; marker`` lines of a ``uv export`` (hashes, comments and options dropped)."""
    skip = {canonicalize_name(name) for name in exclude}
    out = []
    for logical in requirements_txt.replace("\\\n", " ").splitlines():
        text = logical.split(" --hash", 1)[0].split("#", 1)[0].strip()
        if not text or text.startswith("-"):
            continue
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue
        if canonicalize_name(requirement.name) not in skip:
            out.append(str(requirement))
    return out
