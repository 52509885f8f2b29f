"""Creating an env from an existing pyproject.toml + uv.lock: installed as locked (no
resolution), refused when the lock does not match, and how a second daemon reproduces an env
exactly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from envplane.client import EnvplaneClient
from envplane.environments import EnvId, EnvironmentService, EnvStatus, ProjectFiles
from envplane.errors import AlreadyExists, InvalidArgument
from envplane.v1 import environments_pb2 as pb
from tests.support.daemons import ThreadDaemon
from tests.support.envcheck import version_in_env
from tests.support.settings import offline_settings

SOURCE = EnvId.parse("wf", "source")


async def _exported(service: EnvironmentService) -> ProjectFiles:
    await service.create(SOURCE, ["alpha<2", "gamma==0.1.0"])
    exported = await service.export(SOURCE)
    return ProjectFiles(exported.pyproject_toml, exported.uv_lock)


async def test_the_lock_is_installed_as_it_is(service: EnvironmentService) -> None:
    files = await _exported(service)
    source = await service.status(SOURCE)
    uv_before = service.uv.started_total
    copy = await service.create(EnvId.parse("wf", "copy"), project=files)
    # Two uv runs: finding its requires-python (==3.11.*) and `uv lock --check`: no resolution,
    # and no install (the build is shared).
    assert service.uv.started_total - uv_before == 2
    assert copy.status == EnvStatus.READY and copy.record.build_id == source.record.build_id
    assert (copy.record.pyproject_toml, copy.record.uv_lock) == (files.pyproject_toml, files.uv_lock)
    assert version_in_env(copy.python_executable, "alpha") == "1.1.0"
    again = await service.create(EnvId.parse("wf", "copy"), project=files, exist_ok=True)
    assert again.reused
    assert (await service.list_deps(EnvId.parse("wf", "copy"))).declared == ["alpha<2", "gamma==0.1.0"]


async def test_a_lock_that_does_not_match_its_pyproject_is_refused_and_leaves_nothing(
    service: EnvironmentService,
) -> None:
    files = await _exported(service)
    edited = files.pyproject_toml.replace('"gamma==0.1.0"', '"gamma==0.1.0", "delta"')
    env = EnvId.parse("wf", "mismatch")
    with pytest.raises(InvalidArgument) as info:
        await service.create(env, project=ProjectFiles(edited, files.uv_lock))
    message = info.value.message
    assert message.startswith("uv_lock does not match pyproject_toml")
    assert "'delta>=3.0.0'" not in message and "delta" in message and "gamma==0.1.0" in message
    assert "--check" not in message and "--check" not in info.value.detail, "no advice about uv flags"
    with pytest.raises(Exception, match="does not exist"):
        await service.status(env)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"pyproject_toml": "not [toml"}, "pyproject_toml is not valid TOML"),
        ({"uv_lock": "version = 1\n"}, "uv_lock locks no packages"),
        ({"pyproject_toml": "[tool.uv]\npackage = false\n"}, "pyproject_toml has no [project] table"),
        ({"uv_lock": ""}, "uv_lock is required"),
    ],
)
async def test_project_files_are_checked(service: EnvironmentService, change: dict[str, str], fragment: str) -> None:
    files = await _exported(service)
    values = {"pyproject_toml": files.pyproject_toml, "uv_lock": files.uv_lock, **change}
    with pytest.raises(InvalidArgument, match=fragment.replace("[", r"\[")):
        await service.create(EnvId.parse("wf", "bad"), project=ProjectFiles(**values))


async def test_a_lock_that_fetches_from_a_path_is_a_direct_reference(service: EnvironmentService) -> None:
    files = await _exported(service)
    lock = files.uv_lock.replace('source = { registry = "', 'source = { path = "', 1)
    with pytest.raises(InvalidArgument, match="not from an index; direct references are disabled"):
        await service.create(EnvId.parse("wf", "path"), project=ProjectFiles(files.pyproject_toml, lock))


async def test_packages_and_project_files_together_are_refused(service: EnvironmentService) -> None:
    files = await _exported(service)
    with pytest.raises(InvalidArgument, match="not both"):
        await service.create(EnvId.parse("wf", "both"), ["alpha"], project=files)


async def test_a_different_lock_under_the_same_ids_is_already_exists(service: EnvironmentService) -> None:
    await _exported(service)
    other = EnvId.parse("wf", "other")
    await service.create(other, ["delta"])
    exported = await service.export(other)
    with pytest.raises(AlreadyExists, match="different spec"):
        await service.create(SOURCE, project=ProjectFiles(exported.pyproject_toml, exported.uv_lock), exist_ok=True)


def test_a_second_daemon_reproduces_the_env_exactly(
    daemon: ThreadDaemon, wf: str, tmp_path: Path, wheelhouse: Path, uv_cache: Path
) -> None:
    """Export on one daemon, create from the files on another (another machine, a CI runner)."""
    other = ThreadDaemon(offline_settings(tmp_path / "other", [wheelhouse], uv_cache)).start()
    try:
        with (
            EnvplaneClient(daemon.grpc_addr, timeout=60) as first,
            EnvplaneClient(other.grpc_addr, timeout=60) as second,
        ):
            made = first.environments.create(wf, "n", packages=["beta"])
            exported = first.environments.export(wf, "n")
            copy = second.environments.create(wf, "n", pyproject_toml=exported.pyproject_toml, uv_lock=exported.uv_lock)
            assert copy.status == pb.READY and copy.lock_sha256 == made.lock_sha256
            locked = {p.name: p.version for p in second.environments.list_deps(wf, "n").locked}
            assert locked == {p.name: p.version for p in first.environments.list_deps(wf, "n").locked}
            assert version_in_env(copy.python_executable, "beta") == "1.0.0"
    finally:
        other.stop()


def test_rest_and_cli_create_from_project_files(daemon: ThreadDaemon, wf: str, tmp_path: Path) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "ENVPLANE_GRPC_ADDR": daemon.grpc_addr}
        return subprocess.run([sys.executable, "-m", "envplane", *args], env=env, capture_output=True, text=True)

    assert cli("env", "create", wf, "src", "-p", "gamma==0.2.0").returncode == 0
    assert cli("env", "export", wf, "src", "-o", str(tmp_path / "out")).returncode == 0
    created = cli("env", "create", wf, "cli-copy", "--from", str(tmp_path / "out"), "--json")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["dependencies"] == ["gamma==0.2.0"]
    missing = cli("env", "create", wf, "x", "--from", str(tmp_path))
    assert missing.returncode == 2 and "there is no pyproject.toml in it" in missing.stderr

    files: dict[str, Any] = {
        "pyproject_toml": (tmp_path / "out" / "pyproject.toml").read_text(),
        "uv_lock": (tmp_path / "out" / "uv.lock").read_text(),
    }
    body = {"workflow_id": wf, "node_id": "rest-copy", **files}
    response = httpx.post(f"{daemon.http_url}/v1/environments", json=body, timeout=60)
    assert response.status_code == 201, response.text
    assert response.json()["lock_sha256"] == json.loads(created.stdout)["lock_sha256"]
