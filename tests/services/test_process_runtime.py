"""The process runtime on its own: the shim's log (each line's own time, rotation, tail, since,
follow), exit codes and signals, and what a new runtime finds from an old one's records."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

from envplane.services.service.definitions import ServiceDef
from envplane.services.service.process_runtime import ProcessRuntime
from envplane.services.service.runtime import Instance
from tests.support.processes import process_running


async def nothing(_message: str, _percent: int) -> None:
    return None


def runtime(tmp_path: Path, **options: int) -> ProcessRuntime:
    return ProcessRuntime(tmp_path / "services", tmp_path, "test", **options)


async def run(rt: ProcessRuntime, name: str, script: str, **fields: object) -> Instance:
    return await rt.start(ServiceDef(name, command=("sh", "-c", script), **fields), "h", nothing)  # type: ignore[arg-type]


async def test_each_line_keeps_the_time_it_was_written_and_its_stream(tmp_path: Path) -> None:
    rt = runtime(tmp_path)
    before = time.time()
    instance = await run(rt, "talker", "echo one; sleep 0.3; echo two >&2; sleep 0.05; echo three")
    exit_ = await rt.wait(instance)
    assert exit_.code == 0 and exit_.reason == "exited with code 0"
    lines = [line async for line in rt.logs("talker", None, tail=0, since=0, follow=False)]
    assert [(line.stream, line.text) for line in lines] == [("stdout", "one"), ("stderr", "two"), ("stdout", "three")]
    assert before - 0.01 <= lines[0].timestamp <= lines[1].timestamp - 0.25  # written 0.3 s apart, not read together
    later = [line.text async for line in rt.logs("talker", None, tail=0, since=lines[1].timestamp, follow=False)]
    assert later == ["two", "three"]
    assert [line.text async for line in rt.logs("talker", None, tail=1, since=0, follow=False)] == ["three"]


async def test_the_log_rotates_and_tail_reads_across_the_copies(tmp_path: Path) -> None:
    rt = runtime(tmp_path, log_max_bytes=4000, log_backups=2)
    instance = await run(rt, "chatty", 'i=0; while [ $i -lt 600 ]; do echo "line $i"; i=$((i+1)); done')
    await rt.wait(instance)
    folder = rt.folder("chatty")
    assert (folder / "service.log.1").exists() and (folder / "service.log.2").exists()
    assert not (folder / "service.log.3").exists()  # the oldest copies are dropped
    assert all(p.stat().st_size <= 4000 + 200 for p in folder.glob("service.log*"))
    tail = [line.text async for line in rt.logs("chatty", None, tail=250, since=0, follow=False)]
    assert tail == [f"line {i}" for i in range(350, 600)]


async def test_follow_sees_new_lines_across_a_rotation(tmp_path: Path) -> None:
    rt = runtime(tmp_path, log_max_bytes=2000, log_backups=3)
    instance = await run(rt, "ticker", 'i=0; while [ $i -lt 150 ]; do echo "tick $i"; i=$((i+1)); sleep 0.005; done')
    seen: list[str] = []

    async def follow() -> None:
        async for line in rt.logs("ticker", None, tail=0, since=0, follow=True):
            seen.append(line.text)
            if line.text == "tick 149":
                return

    await asyncio.wait_for(follow(), 20)
    await rt.wait(instance)
    assert seen == [f"tick {i}" for i in range(150)]
    assert (rt.folder("ticker") / "service.log.1").exists()


async def test_exit_codes_and_signals_are_told_apart(tmp_path: Path) -> None:
    rt = runtime(tmp_path)
    failing = await run(rt, "failing", "exit 7")
    assert (await rt.wait(failing)).code == 7
    sleeper = await run(rt, "sleeper", "exec sleep 600")
    os.kill(sleeper.pid, signal.SIGKILL)
    exit_ = await rt.wait(sleeper)
    assert (exit_.code, exit_.reason) == (137, "killed by SIGKILL")


async def test_a_new_runtime_finds_what_the_old_one_started(tmp_path: Path) -> None:
    old = runtime(tmp_path)
    instance = await run(old, "keeper", "exec sleep 600")
    new = runtime(tmp_path)
    found = await new.recorded()
    assert found == [instance]
    definition = ServiceDef("keeper", command=("sh", "-c", "exec sleep 600"))
    assert await new.adopt(instance, definition, "h")
    assert not await new.adopt(instance, definition, "another spec")
    await new.discard(instance)
    await asyncio.sleep(0.2)
    assert not process_running(instance.pid) and await new.recorded() == []
    assert not await new.adopt(instance, definition, "h")  # gone: never adopted
