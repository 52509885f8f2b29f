"""The pool's contract, over every transport: handler kinds, values, errors, sessions, logs."""

from __future__ import annotations

import asyncio
import os
import pickle
from collections.abc import Callable
from typing import Any

import pytest

from envplane import errors
from envplane.workers import PoolState
from envplane.workers.service.channel import Pickled


async def test_every_handler_kind(make_pool: Callable[..., Any]) -> None:
    pool = await make_pool(min_size=2, init_args={"greeting": "hey"})
    assert await pool.execute("echo", [{"a": [1, 2.5, None, True]}]) == {"a": [1, 2.5, None, True]}
    assert await pool.execute("add", {"a": 2, "b": 3}) == 5
    assert await pool.execute("add", [2]) == 2
    assert await pool.execute("greet", {"name": "bob"}) == "hey bob"
    assert [c async for c in pool.execute_stream("count", {"n": 4})] == [0, 1, 2, 3]
    assert await pool.execute("slow_echo", ["x"]) == "x"
    assert [c async for c in pool.execute_stream("acount", [3])] == [{"i": 0}, {"i": 1}, {"i": 2}]
    kinds = {name: info["kind"] for name, info in pool.commands.items()}
    assert kinds["count"] == "generator" and kinds["acount"] == "async_generator"
    assert kinds["slow_echo"] == "async" and kinds["echo"] == "function"
    assert "_private" not in kinds and "init" not in kinds  # private names and the hook are not commands


async def test_bytes_and_pickle_round_trip(make_pool: Callable[..., Any]) -> None:
    pool = await make_pool()
    blob = bytes(range(256))
    assert await pool.execute("echo", [blob]) == blob
    assert await pool.execute("echo", [{"nested": [blob]}]) == {"nested": [blob]}
    assert await pool.execute("echo", [{1, 2}], use_pickle=True) == {1, 2}  # a set: pickle only
    with pytest.raises(errors.InvalidArgument, match="cannot be sent"):
        await pool.execute("echo", [{1, 2}])
    # What the daemon does: pickles pass through unopened, both ways.
    passed = await pool.execute("echo", Pickled(pickle.dumps([{3}])))
    assert isinstance(passed, Pickled) and pickle.loads(passed.data) == {3}


async def test_handler_exception_is_typed_with_traceback(make_pool: Callable[..., Any]) -> None:
    pool = await make_pool()
    with pytest.raises(errors.CommandError) as caught:
        await pool.execute("fail", {"message": "the reason"})
    error = caught.value
    assert error.error_type == "ValueError" and error.error_module == "builtins"
    assert "the reason" in error.message and "raise ValueError(message)" in error.traceback
    assert error.message == "fail raised ValueError: the reason" and error.error_message == "the reason"
    assert not isinstance(error, errors.WorkerCrashed)  # the handler failed, not the infrastructure
    assert await pool.execute("echo", [1]) == 1  # the worker goes on


async def test_unencodable_result_is_a_clear_error(make_pool: Callable[..., Any]) -> None:
    pool = await make_pool()
    with pytest.raises(errors.CommandError, match="cannot be sent back") as caught:
        await pool.execute("value_not_json")
    assert caught.value.error_type == "UnencodableValue"


async def test_unknown_command_lists_the_commands(make_pool: Callable[..., Any]) -> None:
    pool = await make_pool()
    with pytest.raises(errors.NotFound, match=r"no command 'nope'.*echo.*greet"):
        await pool.execute("nope")
    with pytest.raises(errors.InvalidArgument, match="generator: call it with execute_stream"):
        await pool.execute("count", [1])
    with pytest.raises(errors.InvalidArgument, match="returns one value"):
        async for _ in pool.execute_stream("echo", [1]):
            pass
    with pytest.raises(errors.InvalidArgument, match="not a Python function name"):
        await pool.execute("os.system")


async def test_print_and_logging_go_to_the_log_not_the_channel(make_pool: Callable[..., Any]) -> None:
    pool = await make_pool()
    for _ in range(3):
        assert await pool.execute("greet", {"name": "ann"}) == "hello ann"
    await asyncio.sleep(0.2)
    texts = [(line.stream, line.text) for line in pool.log.tail()]
    assert ("stdout", "init ran") in texts
    assert ("stdout", "greeting ann") in texts
    assert any(stream == "stderr" and "logged ann" in text for stream, text in texts)


async def test_concurrent_calls_and_streams(make_pool: Callable[..., Any]) -> None:
    pool = await make_pool(min_size=2, concurrency=2)
    results = await asyncio.gather(*(pool.execute("slow_echo", [i, 0.05]) for i in range(16)))
    assert results == list(range(16))

    async def collect(n: int) -> list[Any]:
        return [c async for c in pool.execute_stream("count", {"n": n, "delay": 0.001})]

    streams = await asyncio.gather(*(collect(n) for n in (50, 200, 10, 100)))
    assert [len(s) for s in streams] == [50, 200, 10, 100]
    assert all(s == list(range(len(s))) for s in streams)


async def test_long_stream_respects_flow_control(make_pool: Callable[..., Any]) -> None:
    pool = await make_pool()
    seen = 0
    async for chunk in pool.execute_stream("count", {"n": 5000}):
        assert chunk == seen
        seen += 1
        if seen % 1000 == 0:
            await asyncio.sleep(0.01)  # a slow consumer: the worker waits for credit
    assert seen == 5000


async def test_session_state_lives_in_one_worker(make_pool: Callable[..., Any]) -> None:
    pool = await make_pool(min_size=3, affinity="strict")
    first = await pool.execute("counter", session="a")
    for expected in range(2, 6):
        reply = await pool.execute("counter", session="a")
        assert reply == {"n": expected, "pid": first["pid"]}
    assert (await pool.execute("counter", session="b"))["n"] == 1
    assert pool.info().sessions == 2
    assert await pool.end_session("a")
    assert (await pool.execute("counter", session="a"))["n"] == 1  # a fresh session


async def test_strict_affinity_under_load_keeps_every_session_on_its_worker(make_pool: Callable[..., Any]) -> None:
    pool = await make_pool(min_size=3, affinity="strict")

    async def run(session: str) -> list[dict[str, int]]:
        return [await pool.execute("counter", session=session) for _ in range(10)]

    runs = await asyncio.gather(*(run(f"s{i}") for i in range(12)))
    for replies in runs:
        assert [r["n"] for r in replies] == list(range(1, 11))
        assert len({r["pid"] for r in replies}) == 1


async def test_strict_fail_fast_refuses_when_the_worker_is_busy(make_pool: Callable[..., Any]) -> None:
    pool = await make_pool(min_size=2, affinity="strict_fail_fast")
    await pool.execute("counter", session="s")
    busy = asyncio.create_task(pool.execute("sleep", [1.0], session="s"))
    await asyncio.sleep(0.2)
    with pytest.raises(errors.ResourceExhausted, match="busy"):
        await pool.execute("counter", session="s")
    assert await busy == "slept"


async def test_session_limit(make_pool: Callable[..., Any]) -> None:
    pool = await make_pool(max_sessions=2)
    await pool.execute("counter", session="a")
    await pool.execute("counter", session="b")
    with pytest.raises(errors.ResourceExhausted, match="maximum of 2 sessions"):
        await pool.execute("counter", session="c")


async def test_environment_and_thread_limits(make_pool: Callable[..., Any]) -> None:
    pool = await make_pool(env={"MY_SETTING": "42"}, threads=2)
    assert await pool.execute("environment", ["MY_SETTING"]) == "42"
    assert await pool.execute("environment", ["OMP_NUM_THREADS"]) == "2"
    assert await pool.execute("environment", ["OPENBLAS_NUM_THREADS"]) == "2"
    default = await make_pool()
    assert await default.execute("environment", ["MKL_NUM_THREADS"]) == "1"


async def test_info_describes_each_worker(make_pool: Callable[..., Any]) -> None:
    pool = await make_pool(min_size=2)
    for _ in range(5):
        await pool.execute("echo", [1])
    info = pool.info()
    assert info.state is PoolState.READY and info.ready_workers == 2
    assert sum(w.calls_served for w in info.workers) == 5
    for worker in info.workers:
        assert worker.pid > 0 and worker.state == "idle" and worker.rss > 1_000_000 and worker.uptime > 0
        assert os.getpgid(worker.pid) == worker.pid  # its own process group
    task = asyncio.create_task(pool.execute("sleep", [0.5]))
    await asyncio.sleep(0.2)
    busy = [w for w in pool.info().workers if w.state == "busy"]
    assert len(busy) == 1 and busy[0].current_command == "sleep" and busy[0].current_seconds > 0.1
    await task


async def test_a_huge_unterminated_line_never_blocks_the_worker(make_pool: Callable[..., Any]) -> None:
    pool = await make_pool()
    assert await pool.execute("shout", [1_000_000], timeout=20) == 1_000_000
    assert await pool.execute("shout", [3_000_000], timeout=20) == 3_000_000  # far past any pipe buffer
    await asyncio.sleep(0.2)
    pieces = [line for line in pool.log.tail(count=0) if line.stream == "stdout" and line.text.startswith("xxx")]
    assert pieces and all(len(line.text) <= 8192 for line in pieces)
