"""Orphan safety: workers die with whoever started them, and a later start kills leftovers."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from envplane.core.processes import kill_orphans, record_group
from tests.support.processes import process_running

HOST = textwrap.dedent(
    """
    import asyncio, json, sys
    from envplane.workers import Pool, PoolConfig

    async def main():
        pool = Pool(PoolConfig(sys.argv[1], min_size=3), python=sys.executable, run_dir=sys.argv[2])
        await pool.start()
        await pool.wait_ready(30)
        grandchild = await pool.execute("spawn_child")
        print(json.dumps({"workers": [w.pid for w in pool.info().workers], "grandchild": grandchild}), flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main())
    """
)

SPAWNER = """
import subprocess, sys
CHILDREN = []
def spawn_child():
    # a process the handler started: in the worker's group, it must go too
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    CHILDREN.append(child)
    return child.pid
"""


def start_host(tmp_path: Path) -> tuple[subprocess.Popen[str], dict[str, object]]:
    handler = tmp_path / "spawner.py"
    handler.write_text(SPAWNER)
    script = tmp_path / "host.py"
    script.write_text(HOST)
    host = subprocess.Popen(
        [sys.executable, str(script), str(handler), str(tmp_path / "run")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert host.stdout is not None
    return host, json.loads(host.stdout.readline())


def test_workers_die_within_two_seconds_of_a_kill_9(tmp_path: Path) -> None:
    host, started = start_host(tmp_path)
    pids = [*started["workers"], started["grandchild"]]  # type: ignore[misc]
    assert all(process_running(pid) for pid in pids)
    host.send_signal(signal.SIGKILL)
    host.wait()
    host.stdout.close()  # type: ignore[union-attr]
    killed_at = time.monotonic()
    while any(process_running(pid) for pid in pids) and time.monotonic() - killed_at < 5:
        time.sleep(0.02)
    assert not any(process_running(pid) for pid in pids)
    assert time.monotonic() - killed_at < 2


def test_markers_name_the_groups_a_restart_kills(tmp_path: Path) -> None:
    """A dead host leaves its workers' run/ markers; the next start's ``kill_orphans`` kills
    the groups still alive and never a process that merely reuses a recorded id."""
    run = tmp_path / "run"
    host, started = start_host(tmp_path)
    workers = started["workers"]
    assert sorted(p.name for p in run.iterdir()) == sorted(f"worker.pool-{pid}" for pid in workers)  # type: ignore[attr-defined]
    host.send_signal(signal.SIGKILL)
    host.wait()
    host.stdout.close()  # type: ignore[union-attr]
    # A group that outlived its host (as if the parent-death signal never came) ...
    survivor = subprocess.Popen(["sleep", "3600"], start_new_session=True)
    record_group(run, "worker.pool", survivor.pid)
    # ... and a live process whose id a stale marker names, with another start time.
    stranger = subprocess.Popen(["sleep", "3600"], start_new_session=True)
    (run / f"worker.pool-{stranger.pid}").write_text(f"{stranger.pid} 1\n")
    try:
        assert survivor.pid in kill_orphans(run)
        assert survivor.wait(5) == -signal.SIGKILL
        assert stranger.poll() is None  # not ours: left alone
        assert not list(run.iterdir())
    finally:
        stranger.kill()
        stranger.wait()
