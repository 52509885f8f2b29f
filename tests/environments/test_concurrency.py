"""Serialization per env, parallelism across envs, deadlines and the global uv limit."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from envplane.environments import EnvId, EnvironmentService, EnvStatus
from envplane.errors import DeadlineExceeded, EnvBusy
from tests.support.activity import operations
from tests.support.envcheck import version_in_env
from tests.support.waiting import eventually_async
from tests.support.wheels import read_spans, slow_spans_file

WF = EnvId.parse("wf", "node")


async def _wait_until_busy(service: EnvironmentService, env: EnvId) -> None:
    await eventually_async(lambda: service.env_locks.busy(env), what=f"{env} to become busy")


async def test_a_second_operation_waits_then_runs(
    service: EnvironmentService, slow_package: Callable[[float], str]
) -> None:
    await service.create(WF, ["alpha<2"])
    slow = slow_package(1.5)
    first = asyncio.ensure_future(service.add_deps(WF, [slow]))
    await _wait_until_busy(service, WF)
    assert (await service.status(WF)).busy_with == "add"
    second = await service.add_deps(WF, ["gamma==0.1.0"])  # waits for the first
    outcome = await first
    assert outcome.operation.status == "SUCCEEDED"
    assert second.operation.started_at >= outcome.operation.finished_at  # type: ignore[operator]
    assert sorted(second.env.dependencies)[0] == "alpha<2" and len(second.env.dependencies) == 3


async def test_fail_if_busy_and_deadline(service: EnvironmentService, slow_package: Callable[[float], str]) -> None:
    await service.create(WF, ["alpha<2"])
    slow = slow_package(2.0)
    running = asyncio.ensure_future(service.add_deps(WF, [slow]))
    await _wait_until_busy(service, WF)
    with pytest.raises(EnvBusy, match="busy with add"):
        await service.add_deps(WF, ["gamma"], fail_if_busy=True)
    with pytest.raises(EnvBusy):
        await service.delete(WF, fail_if_busy=True)
    with pytest.raises(DeadlineExceeded, match="waiting for environment wf/node"):
        await service.sync(WF, deadline=time.monotonic() + 0.3)
    assert not running.done(), "the deadline ended the wait, not the add finishing"
    await running
    assert (await service.status(WF)).status == EnvStatus.READY


async def test_a_deadline_during_uv_fails_cleanly_and_keeps_the_old_state(
    service: EnvironmentService, slow_package: Callable[[float], str]
) -> None:
    view = await service.create(WF, ["alpha<2"])
    slow = slow_package(5.0)
    with pytest.raises(DeadlineExceeded, match="did not finish"):
        await service.add_deps(WF, [slow], deadline=time.monotonic() + 1.0)
    assert version_in_env(view.python_executable, "alpha") == "1.1.0"
    assert (await service.status(WF)).dependencies == ["alpha<2"]
    failed = (await operations(service, status="FAILED")).items
    assert failed[0].operation == "add" and "did not finish" in failed[0].error
    assert service.uv.running == 0


async def test_cancelled_request_kills_uv_and_records_failure(
    service: EnvironmentService, slow_package: Callable[[float], str]
) -> None:
    slow = slow_package(5.0)
    task = asyncio.ensure_future(service.create(WF, [slow]))
    await _wait_until_busy(service, WF)
    await asyncio.sleep(0.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert service.uv.running == 0
    view = await service.status(WF)
    assert view.status == EnvStatus.FAILED
    op = (await operations(service)).items[0]
    assert op.status == "FAILED" and "cancelled" in op.error


async def test_different_envs_run_in_parallel(
    service: EnvironmentService, slow_package: Callable[[float], str], wheelhouse: Path
) -> None:
    names = [slow_package(1.5) for _ in range(3)]
    views = await asyncio.gather(*(service.create(EnvId.parse("wf", f"n{i}"), [name]) for i, name in enumerate(names)))
    assert all(v.status == EnvStatus.READY for v in views)
    # Each create builds its sdist while resolving: those three builds overlapped in time
    # (one after another, each would have ended before the next began).
    resolving = [s for name in names for s in read_spans(slow_spans_file(wheelhouse, name)) if s[0] == "metadata"]
    assert len(resolving) == 3
    assert max(start for _, start, _ in resolving) < min(end for _, _, end in resolving), "not parallel"


async def test_identical_concurrent_creates_build_once(service: EnvironmentService) -> None:
    views = await asyncio.gather(*(service.create(EnvId.parse("wf", f"same{i}"), ["delta"]) for i in range(6)))
    assert len({v.record.build_id for v in views}) == 1
    assert len(service.builds.on_disk()) == 1
    assert len(service.builds.locks) == 0 and len(service.env_locks) == 0, "locks are pruned"


async def test_global_uv_limit_bounds_processes(make_service, slow_package) -> None:  # type: ignore[no-untyped-def]
    service: EnvironmentService = await make_service(max_concurrent_uv=1)
    names = [slow_package(0.7) for _ in range(2)]
    peak = 0

    async def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, service.uv.running)
            await asyncio.sleep(0.01)

    sampler = asyncio.ensure_future(sample())
    await asyncio.gather(*(service.create(EnvId.parse("wf", f"n{i}"), [n]) for i, n in enumerate(names)))
    sampler.cancel()
    assert peak == 1


async def test_a_caller_in_a_hurry_does_not_fail_others_sharing_its_interpreter_lookup(
    make_service,  # type: ignore[no-untyped-def]
) -> None:
    """Two creates ask for a python nobody looked up yet: one with a deadline shorter than the
    lookup (a uv process), one with none. Only the hurried one fails."""
    service: EnvironmentService = await make_service()
    hurried = asyncio.ensure_future(
        service.create(
            EnvId.parse("wf", "hurried"), ["alpha"], python_version="3.11.7", deadline=time.monotonic() + 0.01
        )
    )
    patient = asyncio.ensure_future(service.create(EnvId.parse("wf", "patient"), ["alpha"], python_version="3.11.7"))
    with pytest.raises(DeadlineExceeded, match=r"looking for python '3\.11\.7'"):
        await hurried
    assert (await patient).status == EnvStatus.READY


async def test_creates_sharing_a_build_run_together_and_keep_a_collector_away(service: EnvironmentService) -> None:
    """Identical-spec creates reference one build at once (no exclusive lock between them), and
    a collector leaves alone a build that is about to be referenced."""
    only = await service.create(EnvId.parse("wf", "only"), ["gamma==0.1.0"])
    build = only.record.build_id
    async with service.builds.shared(build):
        await service.delete(EnvId.parse("wf", "only"))  # collects unreferenced builds...
        assert service.layout.is_complete(build), "...but not one a create is sharing"
    assert await service.engine.release_builds() == [build], "once nobody shares it, it goes"
    seed = await service.create(EnvId.parse("wf", "seed"), ["gamma==0.1.0"])  # builds it again
    uv_before = service.uv.started_total
    views = await asyncio.gather(*(service.create(EnvId.parse("wf", f"s{i}"), ["gamma==0.1.0"]) for i in range(8)))
    assert service.uv.started_total == uv_before, "no uv: the shared path"
    assert {v.record.build_id for v in views} == {seed.record.build_id}
    assert all(version_in_env(v.python_executable, "gamma") == "0.1.0" for v in views)
