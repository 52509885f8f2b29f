"""RayBatchRunner on a real Ray cluster: every variant runs in its own envplane environment."""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from envplane.errors import FailedPrecondition, InvalidArgument, NotFound, ResolutionFailed
from envplane.providers import GrpcEnvironmentProvider, InMemoryEnvironmentProvider
from envplane.ray import RayBatchRunner, Variant
from envplane.ray.runner import check_portable_allowed
from tests.support.daemons import ThreadDaemon

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_cluster")]


def node(pause: float = 0.0, fail: bool = False) -> dict[str, Any]:
    """The node under test: reports its interpreter and what it can import."""
    import importlib
    import sys
    import time

    began = time.time()
    if fail:
        raise ValueError("this variant's node failed on purpose")
    found: dict[str, Any] = {"python": sys.executable, "began": began}
    for name in ("alpha", "gamma"):
        try:
            found[name] = importlib.import_module(name).__version__
        except ImportError:
            found[name] = None
    time.sleep(pause)
    found["ended"] = time.time()
    return found


@pytest.fixture
def provider(plane_daemon: ThreadDaemon) -> Iterator[GrpcEnvironmentProvider]:
    with GrpcEnvironmentProvider(plane_daemon.grpc_addr, timeout=300) as made:
        yield made


def test_variants_with_conflicting_versions_run_side_by_side(provider: GrpcEnvironmentProvider, wf: str) -> None:
    assert importlib.util.find_spec("alpha") is None and importlib.util.find_spec("gamma") is None, (
        "the driver must not have the packages the variants use"
    )
    runner = RayBatchRunner(provider, workflow_id=wf, node_id="scorer")
    landed: list[str] = []
    batch = runner.run(
        node,
        [
            Variant("old", packages=["alpha==1.0.0"], kwargs={"pause": 3.0}),
            Variant("new", packages=["alpha==2.0.0"], kwargs={"pause": 3.0}),
            Variant("broken", packages=["broken"]),
        ],
        timeout=240,
        on_result=lambda result: landed.append(result.variant_id),
    )
    assert sorted(landed) == ["broken", "new", "old"] and landed[0] == "broken", "reported as they finished"
    old, new, broken = batch.results
    assert [r.variant_id for r in batch] == ["old", "new", "broken"]

    # conflicting versions of one package, each variant sees its own, in its own interpreter
    assert (old.ok, old.value["alpha"]) == (True, "1.0.0"), old.error
    assert (new.ok, new.value["alpha"]) == (True, "2.0.0"), new.error
    assert old.env is not None and new.env is not None
    assert old.value["python"] == old.env.python_executable != new.value["python"] == new.env.python_executable
    assert old.value["python"] != sys.executable
    assert old.value["began"] < new.value["ended"] and new.value["began"] < old.value["ended"], "they ran at once"

    # a failed environment is that variant's error only
    assert not broken.ok and broken.stage == "environment" and broken.env is None
    assert "does-not-exist" in broken.error and isinstance(broken.exception, ResolutionFailed)
    assert [r.variant_id for r in batch.failed] == ["broken"] and not batch.ok
    assert set(batch.values()) == {"old", "new"}
    assert old.env_seconds > 0 and old.task_seconds >= 3.0

    # a package the driver lacks is importable inside the task
    gamma = runner.run(node, [Variant("only-gamma", packages=["gamma==0.2.0"])], timeout=240)["only-gamma"]
    assert gamma.ok and gamma.value["gamma"] == "0.2.0" and gamma.value["alpha"] is None

    # cleanup removes the envs the runner made
    paths = [Path(r.env.env_path) for r in (old, new, gamma) if r.env]
    assert all(p.is_dir() for p in paths)
    assert runner.cleanup() == {"broken": False, "new": True, "old": True, "only-gamma": True}
    assert not any(p.exists() for p in paths)
    with pytest.raises(NotFound):
        provider.client.environments.get(wf, "scorer", version_id="old")


def test_task_failures_and_the_batch_timeout_are_per_variant(provider: GrpcEnvironmentProvider, wf: str) -> None:
    runner = RayBatchRunner(provider, workflow_id=wf, node_id="n", task_options={"max_retries": 0})
    started = time.monotonic()
    batch = runner.run(
        node,
        [
            Variant("fine", packages=["alpha==1.0.0"]),
            Variant("raises", packages=["alpha==1.0.0"], kwargs={"fail": True}),
            Variant("hangs", packages=["alpha==1.0.0"], kwargs={"pause": 600}),
        ],
        timeout=25,
    )
    assert time.monotonic() - started < 60
    fine, raises, hangs = batch.results
    assert fine.ok and fine.value["alpha"] == "1.0.0"
    assert (raises.stage, raises.error) == ("task", "ValueError: this variant's node failed on purpose")
    assert not hangs.ok and hangs.stage == "task" and "timeout" in hangs.error
    assert hangs.env is not None, "the env was made; only the task failed"
    runner.cleanup()


def test_portable_runtime_env_is_rebuilt_by_rays_uv_plugin(
    plane_daemon: ThreadDaemon, wheelhouse: Path, wf: str
) -> None:
    options = ["--no-index", "--find-links", str(wheelhouse)]
    with GrpcEnvironmentProvider(plane_daemon.grpc_addr, portable_install_options=options) as provider:
        runner = RayBatchRunner(provider, workflow_id=wf, node_id="n", portable=True)
        batch = runner.run(node, [Variant("p", packages=["alpha==1.0.0", "gamma==0.1.0"])], timeout=240)
        (result,) = batch.results
        assert result.ok, result.error
        assert (result.value["alpha"], result.value["gamma"]) == ("1.0.0", "0.1.0")
        assert result.env is not None and result.value["python"] != result.env.python_executable, (
            "Ray built its own copy of the env from the pins"
        )
        runner.cleanup()


def test_the_in_memory_double_drives_the_runner_in_the_driver_interpreter(wf: str) -> None:
    runner = RayBatchRunner(InMemoryEnvironmentProvider(), workflow_id=wf, node_id="n")
    batch = runner.run(node, [{"variant_id": "a", "packages": []}])
    assert batch["a"].ok and batch["a"].value["python"] == sys.executable


def test_bad_batches_are_refused_up_front(provider: GrpcEnvironmentProvider, wf: str) -> None:
    runner = RayBatchRunner(provider, workflow_id=wf, node_id="n")
    with pytest.raises(InvalidArgument, match=r"repeated: \['a'\]"):
        runner.run(node, [Variant("a"), Variant("a")])
    with pytest.raises(InvalidArgument, match="bad variant"):
        runner.run(node, [{"variant_id": "a", "colour": "red"}])
    with pytest.raises(InvalidArgument, match="node_id"):
        RayBatchRunner(provider, workflow_id=wf, node_id="bad id!")


def test_portable_mode_refuses_a_job_that_fixes_the_interpreter() -> None:
    uv_run_job = {"py_executable": "uv run --python 3.11.7 python", "working_dir": "gcs://_ray_pkg_x.zip"}
    with pytest.raises(FailedPrecondition, match=r"started with `uv run`.*RAY_ENABLE_UV_RUN_RUNTIME_ENV=0"):
        check_portable_allowed(uv_run_job)
    check_portable_allowed({"env_vars": {"A": "1"}})  # nothing fixes the interpreter: allowed


def test_the_batch_timeout_also_bounds_environment_creation(
    provider: GrpcEnvironmentProvider, wf: str, slow_package: Callable[[float], str]
) -> None:
    slow = slow_package(8.0)  # its sdist takes 8 s to build
    runner = RayBatchRunner(provider, workflow_id=wf, node_id="n")
    started = time.monotonic()
    batch = runner.run(node, [Variant("slow", packages=[slow])], timeout=2.0)
    assert time.monotonic() - started < 12, "the env build alone takes 16 s (metadata + wheel)"
    (result,) = batch.results
    assert (result.ok, result.stage) == (False, "environment")
    assert "timeout passed while its environment was being made" in result.error
    assert result.env_seconds >= 1.5
