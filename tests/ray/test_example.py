"""The example in examples/ runs as the README shows (offline here: local wheels, the test cluster)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.ray


def test_example_runs_variants_and_cleans_up(
    ray_cluster: str, tmp_path: Path, wheelhouse: Path, ray_wheelhouse: Path, uv_cache: Path
) -> None:
    command = [
        sys.executable,
        str(REPO / "examples" / "ray_batch.py"),
        "--ray-address",
        ray_cluster,
        "--data-dir",
        str(tmp_path / "data"),
        "--no-index",
        "--find-links",
        str(wheelhouse),
        "--find-links",
        str(ray_wheelhouse),
        "--variant",
        "old=alpha==1.0.0",
        "--variant",
        "new=alpha==2.0.0,gamma==0.1.0",
        "--variant",
        "bad=broken",
        "--cleanup",
    ]
    env = {**os.environ, "ENVPLANE_UV_CACHE_DIR": str(uv_cache), "COLUMNS": "200"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr  # one variant fails on purpose
    assert "alpha==1.0.0" in done.stdout and "alpha==2.0.0, gamma==0.1.0" in done.stdout, done.stdout
    assert "environment failed:" in done.stdout and "does-not-exist" in done.stdout
    assert "removed 2 environment(s)" in done.stdout
    assert not any((tmp_path / "data" / "projects").rglob("pyproject.toml")), "cleanup removed the envs"


@pytest.mark.network
def test_example_from_pypi_as_the_readme_shows(ray_cluster: str, tmp_path: Path) -> None:
    """`make example`, against the live index (deselected by default; `make test-all`)."""
    command = [sys.executable, str(REPO / "examples" / "ray_batch.py"), "--data-dir", str(tmp_path), "--cleanup"]
    command += ["--ray-address", ray_cluster]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=900, cwd=tmp_path, env={**os.environ, "COLUMNS": "200"}
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for seen in ("six==1.16.0", "six==1.17.0", "tabulate==0.9.0", "removed 3 environment(s)"):
        assert seen in done.stdout, done.stdout
