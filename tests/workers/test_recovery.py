"""Failure and recovery with real processes: queues, timeouts, cancellation, crashes,
segfaults, memory limits, heartbeats, recycling, scaling. The pool must never hang."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from envplane import errors
from envplane.workers import Pool, PoolConfig, PoolState
from envplane.workers.service.cgroups import MemoryCgroups
from tests.support.processes import process_running
from tests.support.waiting import eventually_async
from tests.workers.handlers import BAD_INIT, BROKEN, write_handler


def ready_pids(pool: Pool) -> list[int]:
    return [w.pid for w in pool.info().workers if w.state in ("idle", "busy")]


async def test_queue_full_is_resource_exhausted(make_pool: Callable[..., Any]) -> None:
    pool = await make_pool(max_queue=2)
    running = [asyncio.create_task(pool.execute("sleep", [0.5])) for _ in range(3)]  # 1 runs, 2 queue
    await asyncio.sleep(0.1)
    assert pool.info().queued == 2
    with pytest.raises(errors.ResourceExhausted, match="queue is full"):
        await pool.execute("echo", [1])
    assert await asyncio.gather(*running) == ["slept"] * 3


async def test_queue_wait_past_the_deadline(make_pool: Callable[..., Any]) -> None:
    pool = await make_pool(queue_timeout=0.3)
    running = asyncio.create_task(pool.execute("sleep", [1.0]))
    await asyncio.sleep(0.05)
    started = time.monotonic()
    with pytest.raises(errors.DeadlineExceeded, match="in the queue"):
        await pool.execute("echo", [1])
    assert 0.25 < time.monotonic() - started < 0.8
    with pytest.raises(errors.DeadlineExceeded, match="call's timeout"):
        await pool.execute("echo", [1], timeout=0.1)
    assert pool.info().queued == 0
    assert await running == "slept"


async def test_timeout_interrupts_the_command_and_keeps_the_worker(make_pool: Callable[..., Any]) -> None:
    pool = await make_pool()
    [pid] = ready_pids(pool)
    started = time.monotonic()
    with pytest.raises(errors.DeadlineExceeded, match=r"ran past its timeout of 0.2 s"):
        await pool.execute("sleep", [30], timeout=0.2)
    assert time.monotonic() - started < 1
    assert await pool.execute("echo", ["next"]) == "next"  # the sleep was interrupted, not waited for
    assert ready_pids(pool) == [pid] and pool.info().workers[0].restarts == 0


async def test_command_that_ignores_cancel_is_recycled_after_the_grace(make_pool: Callable[..., Any]) -> None:
    pool = await make_pool(cancel_grace=0.5)
    [pid] = ready_pids(pool)
    with pytest.raises(errors.DeadlineExceeded):
        await pool.execute("stubborn", [30], timeout=0.2)
    started = time.monotonic()
    assert await pool.execute("echo", ["after"]) == "after"  # ran on the replacement
    assert 0.2 < time.monotonic() - started < 5
    [new_pid] = ready_pids(pool)
    assert new_pid != pid
    assert "did not stop within 0.5 s" in pool.info().workers[0].last_exit


async def test_late_result_never_reaches_the_next_caller(make_pool: Callable[..., Any]) -> None:
    pool = await make_pool()
    task = asyncio.create_task(pool.execute("stubborn", [0.6]))  # finishes despite the cancel
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await pool.execute("echo", ["mine"]) == "mine"  # waited for the slot; got its own value


async def test_cancelling_a_stream_midway_stops_the_generator(make_pool: Callable[..., Any]) -> None:
    pool = await make_pool()
    got = []
    stream = pool.execute_stream("count", {"n": 1_000_000, "delay": 0.001})
    async for chunk in stream:
        got.append(chunk)
        if len(got) == 5:
            break
    await stream.aclose()
    assert got == [0, 1, 2, 3, 4]
    assert await pool.execute("echo", [1], timeout=5) == 1  # the generator stopped; the slot is back
    assert pool.info().workers[0].restarts == 0


async def test_stream_timeout(make_pool: Callable[..., Any]) -> None:
    pool = await make_pool()
    got = []
    with pytest.raises(errors.DeadlineExceeded, match="streamed past its timeout"):
        async for chunk in pool.execute_stream("count", {"n": 100, "delay": 0.1}, timeout=0.35):
            got.append(chunk)
    assert 1 <= len(got) <= 4


async def test_kill_9_mid_call_fails_unavailable_and_the_worker_comes_back(make_pool: Callable[..., Any]) -> None:
    pool = await make_pool(min_size=2)
    task = asyncio.create_task(pool.execute("sleep", [30]))
    await eventually_async(lambda: any(w.state == "busy" for w in pool.info().workers), timeout=10)
    victim = next(w.pid for w in pool.info().workers if w.state == "busy")
    os.kill(victim, signal.SIGKILL)
    with pytest.raises(errors.WorkerCrashed, match="killed by SIGKILL") as caught:
        await asyncio.wait_for(task, 5)
    assert isinstance(caught.value, errors.Unavailable)
    await eventually_async(lambda: len(ready_pids(pool)) == 2, timeout=10)
    assert victim not in ready_pids(pool)
    assert sum(w.restarts for w in pool.info().workers) == 1
    assert await pool.execute("echo", [2]) == 2


async def test_segfault_is_reported_with_its_signal(make_pool: Callable[..., Any]) -> None:
    pool = await make_pool()
    with pytest.raises(errors.WorkerCrashed, match="SIGSEGV"):
        await pool.execute("segfault", timeout=10)
    assert await pool.execute("echo", ["alive"], timeout=10) == "alive"


async def test_exit_code_is_the_cause(make_pool: Callable[..., Any]) -> None:
    pool = await make_pool()
    with pytest.raises(errors.WorkerCrashed, match="exited with code 7") as caught:
        await pool.execute("exit_with", [7])
    assert caught.value.cause == "exited with code 7"


async def test_idempotent_command_is_retried_once_on_a_crash(make_pool: Callable[..., Any], tmp_path: Path) -> None:
    pool = await make_pool(min_size=2, idempotent=("crash_once",))
    pids = ready_pids(pool)
    answer = await pool.execute("crash_once", [str(tmp_path / "a")])  # marked in the pool's definition
    assert answer in pids  # the other worker answered the retry
    assert await pool.execute("crash_once", [str(tmp_path / "b")], idempotent=True) > 0  # marked by the call
    with pytest.raises(errors.WorkerCrashed, match="exited with code 9"):
        await pool.execute("crash_once", [str(tmp_path / "c")], session="s")  # a session's state: no retry
    with pytest.raises(errors.WorkerCrashed):  # not marked idempotent: no retry
        await pool.execute("exit_with", [3])


async def test_pool_never_hangs_while_workers_are_killed(make_pool: Callable[..., Any]) -> None:
    """The multiprocessing.Pool failure (cpython#96062): every call ends, crashed or served."""
    pool = await make_pool(min_size=3, restart_backoff=0.01)

    async def killer() -> None:
        for _ in range(6):
            await asyncio.sleep(0.15)
            for pid in ready_pids(pool)[:1]:
                os.kill(pid, signal.SIGKILL)

    calls = [pool.execute("spin", [0.05], timeout=20) for _ in range(60)]
    outcomes = await asyncio.wait_for(asyncio.gather(killer(), *calls, return_exceptions=True), timeout=60)
    results = outcomes[1:]
    crashed = [r for r in results if isinstance(r, errors.WorkerCrashed)]
    served = [r for r in results if isinstance(r, int)]
    assert len(crashed) + len(served) == 60, [r for r in results if not isinstance(r, (int, errors.WorkerCrashed))]
    assert served
    await eventually_async(lambda: len(ready_pids(pool)) == 3, timeout=10)


@pytest.fixture(params=["cgroup", "watchdog"])
def enforcement(request: pytest.FixtureRequest) -> str:
    if request.param == "cgroup":
        probe = MemoryCgroups.detect(f"probe-{os.getpid()}")
        if probe is None:
            pytest.skip("this host gives the daemon no memory cgroup (the watchdog case still runs)")
        probe.close()
    return str(request.param)


async def test_memory_limit_kills_the_call_within_a_second(make_pool: Callable[..., Any], enforcement: str) -> None:
    pool = await make_pool(memory_limit=150 * 2**20, memory_cgroup=enforcement == "cgroup")
    assert pool.info().memory_enforcement.startswith("cgroup" if enforcement == "cgroup" else "rss watchdog")
    started = time.monotonic()
    with pytest.raises(errors.WorkerOutOfMemory) as caught:
        await pool.execute("allocate", {"mib": 400, "hold": 10}, timeout=20)
    assert time.monotonic() - started < 3
    error = caught.value
    assert error.limit == 150 * 2**20 and error.peak_rss >= 0.99 * error.limit
    assert "memory limit of 150.0 MiB" in error.message and "peak " in error.message
    assert await pool.execute("allocate", {"mib": 20, "hold": 0}) == 20 * 2**20  # replaced, serving
    if enforcement == "cgroup":  # the kernel's limit is exact, and counts the handler's children
        assert error.peak_rss <= 1.05 * error.limit
        assert await pool.execute("allocate_in_child", [400], timeout=30) == -signal.SIGKILL


async def test_watchdog_does_not_see_children(make_pool: Callable[..., Any]) -> None:
    """The documented limit of the watchdog: a child's memory is not the worker's RSS."""
    pool = await make_pool(memory_limit=150 * 2**20, memory_cgroup=False)
    assert await pool.execute("allocate_in_child", [200], timeout=30) == 0


async def test_retry_on_oom_grows_the_limit(make_pool: Callable[..., Any]) -> None:
    pool = await make_pool(memory_limit=100 * 2**20, retry_on_oom=True, oom_growth=3.0, oom_cap=400 * 2**20)
    assert await pool.execute("allocate", {"mib": 150, "hold": 0.3}, timeout=30) == 150 * 2**20
    assert pool.info().workers[0].memory_limit == 300 * 2**20
    with pytest.raises(errors.WorkerOutOfMemory, match="the one retry") as caught:  # grown to the cap, once
        await pool.execute("allocate", {"mib": 500, "hold": 5}, timeout=30)
    assert caught.value.limit == 400 * 2**20
    with pytest.raises(errors.WorkerOutOfMemory, match=r"at its cap of 400.0 MiB"):  # no room left to grow
        await pool.execute("allocate", {"mib": 500, "hold": 5}, timeout=30)


async def test_hung_worker_is_found_by_heartbeats(make_pool: Callable[..., Any]) -> None:
    pool = await make_pool(heartbeat_interval=0.2, heartbeat_timeout=1.0)
    [pid] = ready_pids(pool)
    os.kill(pid, signal.SIGSTOP)  # frozen: no pongs
    await eventually_async(lambda: pid not in ready_pids(pool) and len(ready_pids(pool)) == 1, timeout=10)
    assert "heartbeats" in pool.info().workers[0].last_exit


async def test_long_call_does_not_block_heartbeats(make_pool: Callable[..., Any]) -> None:
    pool = await make_pool(heartbeat_interval=0.1, heartbeat_timeout=0.5)
    assert await pool.execute("spin", [2.0]) > 0  # pure-Python loop, 4× the heartbeat timeout
    assert await pool.execute("sleep", [1.5]) == "slept"
    assert pool.info().workers[0].restarts == 0


async def test_recycle_after_max_calls(make_pool: Callable[..., Any]) -> None:
    pool = await make_pool(max_calls=3)
    pids = [await pool.execute("pid") for _ in range(7)]
    assert pids[0] == pids[1] == pids[2] and pids[3] == pids[4] == pids[5] and pids[6] not in pids[:6]
    assert "max_calls 3" in pool.info().workers[0].last_exit


async def test_recycle_after_ttl(make_pool: Callable[..., Any]) -> None:
    pool = await make_pool(ttl=1.0)
    first = await pool.execute("pid")
    await eventually_async(lambda: bool(ready_pids(pool)) and ready_pids(pool)[0] != first, timeout=10)
    assert await pool.execute("pid") != first


async def test_session_on_a_dead_worker_is_lost_never_moved(make_pool: Callable[..., Any]) -> None:
    pool = await make_pool(min_size=2, affinity="hint")
    reply = await pool.execute("counter", session="s")
    os.kill(reply["pid"], signal.SIGKILL)
    await eventually_async(lambda: reply["pid"] not in ready_pids(pool) and len(ready_pids(pool)) == 2, timeout=10)
    with pytest.raises(errors.SessionLost, match=r"lost its state.*SIGKILL"):
        await pool.execute("counter", session="s")
    assert (await pool.execute("counter", session="t"))["n"] == 1


async def test_scale_up_and_down(make_pool: Callable[..., Any]) -> None:
    pool = await make_pool(min_size=1)
    await pool.scale(3, 3)
    await pool.wait_ready(30)
    assert len(ready_pids(pool)) == 3
    await pool.scale(1, 1)
    await eventually_async(lambda: len(pool.info().workers) == 1, timeout=10)
    assert await pool.execute("echo", [1]) == 1


async def test_grows_on_demand_up_to_max_size(make_pool: Callable[..., Any]) -> None:
    pool = await make_pool(min_size=1, max_size=3)
    results = await asyncio.gather(*(pool.execute("sleep", [0.5]) for _ in range(6)))
    assert results == ["slept"] * 6
    assert 1 < len(pool.info().workers) <= 3


async def test_broken_handler_fails_fast_with_stderr_and_exit_code(tmp_path: Path, transport: str) -> None:
    handler = write_handler(tmp_path, "broken", BROKEN)
    import sys

    pool = Pool(PoolConfig(str(handler), min_size=3, transport=transport), python=sys.executable)
    await pool.start()
    started = time.monotonic()
    with pytest.raises(errors.PoolFailed) as caught:
        await pool.wait_ready(30)
    assert time.monotonic() - started < 10
    assert "cannot load the model" in caught.value.message
    assert "about to fail" in caught.value.detail and "RuntimeError" in caught.value.detail
    assert pool.state is PoolState.FAILED
    with pytest.raises(errors.PoolFailed):
        await pool.execute("echo", [1])
    await pool.close()


async def test_failing_init_hook(tmp_path: Path, transport: str) -> None:
    import sys

    handler = write_handler(tmp_path, "bad_init", BAD_INIT)
    pool = Pool(PoolConfig(str(handler), transport=transport), python=sys.executable)
    await pool.start()
    with pytest.raises(errors.PoolFailed, match="OSError: no GPU here"):
        await pool.wait_ready(30)
    await pool.close()


async def test_missing_interpreter(tmp_path: Path, transport: str, handler: Path) -> None:
    pool = Pool(PoolConfig(str(handler), transport=transport), python=str(tmp_path / "no-python"))
    await pool.start()
    with pytest.raises(errors.PoolFailed, match="cannot start"):
        await pool.wait_ready(10)
    await pool.close()


async def test_close_kills_workers_and_their_children(make_pool: Callable[..., Any]) -> None:
    pool = await make_pool(min_size=2)
    pids = ready_pids(pool)
    busy = asyncio.create_task(pool.execute("stubborn", [30]))
    await asyncio.sleep(0.1)
    await pool.close(grace=0.3)
    with pytest.raises((errors.WorkerCrashed, errors.Unavailable)):
        await busy
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    with pytest.raises(errors.Unavailable, match="being deleted"):
        await pool.execute("echo", [1])


async def test_threaded_function_is_recycled_async_one_cancelled_in_place(make_pool: Callable[..., Any]) -> None:
    """Concurrency > 1 runs sync commands on threads, which cannot be interrupted safely: the
    worker is recycled after the grace. An async command is cancelled where it awaits."""
    pool = await make_pool(concurrency=2, cancel_grace=0.3)
    [pid] = ready_pids(pool)
    with pytest.raises(errors.DeadlineExceeded):
        await pool.execute("slow_echo", [1, 30], timeout=0.2)
    await asyncio.sleep(0.5)
    assert ready_pids(pool) == [pid]
    with pytest.raises(errors.DeadlineExceeded):
        await pool.execute("sleep", [30], timeout=0.2)
    await eventually_async(lambda: bool(ready_pids(pool)) and ready_pids(pool)[0] != pid, timeout=10)
    assert "did not stop within 0.3 s" in pool.info().workers[0].last_exit


async def test_recycle_when_rss_passes_max_rss(make_pool: Callable[..., Any]) -> None:
    pool = await make_pool(max_rss=100 * 2**20)
    first = await pool.execute("pid")
    await pool.execute("allocate", {"mib": 0, "hold": 0})
    keep = await pool.execute("echo", [1])  # small: stays
    assert keep == 1 and await pool.execute("pid") == first
    await pool.execute("grow", [150])  # keeps 150 MiB alive in the worker, between calls
    await eventually_async(lambda: bool(ready_pids(pool)) and ready_pids(pool)[0] != first, timeout=10)
    assert "max_rss" in pool.info().workers[0].last_exit


async def test_idle_sessions_expire_after_their_ttl(make_pool: Callable[..., Any]) -> None:
    pool = await make_pool(session_ttl=0.5, min_size=2)
    assert (await pool.execute("counter", session="s"))["n"] == 1
    assert (await pool.execute("counter", session="s"))["n"] == 2
    await eventually_async(lambda: pool.info().sessions == 0, timeout=5)
    assert (await pool.execute("counter", session="s"))["n"] == 1  # expired: its state was dropped


async def test_a_memory_cgroup_takes_even_escaped_children(make_pool: Callable[..., Any]) -> None:
    if MemoryCgroups.detect(f"probe-{os.getpid()}") is None:
        pytest.skip("this host gives the daemon no memory cgroup")
    pool = await make_pool(memory_limit=500 * 2**20)
    child = await pool.execute("escape")
    assert os.getpgid(child) != os.getpgid(ready_pids(pool)[0])  # escaped the process group
    await pool.close(grace=0.5)
    await eventually_async(lambda: not process_running(child), timeout=5)


async def test_a_child_holding_the_workers_output_does_not_hide_its_death(make_pool: Callable[..., Any]) -> None:
    """A child the handler started (in a session of its own, so it outlives the group kill)
    keeps the worker's stdout open: the worker's exit must still be seen at once."""
    pool = await make_pool()
    child = await pool.execute("escape")
    try:
        with pytest.raises(errors.WorkerCrashed, match="exited with code 7"):
            await pool.execute("exit_with", [7], timeout=10)
        assert await pool.execute("echo", ["next"], timeout=10) == "next"
    finally:
        os.kill(child, signal.SIGKILL)


async def test_close_while_workers_are_starting(handler: Path, transport: str, tmp_path: Path) -> None:
    import sys

    pool = Pool(
        PoolConfig(str(handler), min_size=4, transport=transport), python=sys.executable, run_dir=tmp_path / "run"
    )
    await pool.start()
    await asyncio.sleep(0.01)  # some spawned, none ready
    started = time.monotonic()
    await pool.close(grace=0.2)
    assert time.monotonic() - started < 5
    assert pool.state is PoolState.CLOSED and not list((tmp_path / "run").glob("worker.*"))
