"""The `envplane` command against a real daemon, as a user (or a script with --json) runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.daemons import ThreadDaemon


def envplane(daemon: ThreadDaemon | None, *args: str, addr: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ENVPLANE_GRPC_ADDR": addr or (daemon.grpc_addr if daemon else ""), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "envplane", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_env_commands_end_to_end(daemon: ThreadDaemon, wf: str, tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("alpha<2\n")
    created = envplane(
        daemon, "env", "create", wf, "rag", "-p", "gamma==0.1.0", "-r", str(requirements), "--python", "3.11"
    )
    assert created.returncode == 0, created.stderr
    assert f"created {wf}/rag" in created.stdout and "READY" in created.stdout

    listed = envplane(daemon, "env", "list", "--workflow", wf, "--json")
    assert [e["ref"]["node_id"] for e in json.loads(listed.stdout)] == ["rag"]

    added = envplane(daemon, "env", "add", wf, "rag", "delta")
    assert added.returncode == 0 and "delta: - -> 3.0.0" in added.stdout

    updated = envplane(daemon, "env", "update", wf, "rag", "gamma>=0.2")
    assert "gamma: 0.1.0 -> 0.2.0" in updated.stdout

    deps = json.loads(envplane(daemon, "env", "deps", wf, "rag", "--json").stdout)
    assert {p["name"]: p["version"] for p in deps["locked"]}["gamma"] == "0.2.0"

    removed = envplane(daemon, "env", "remove", wf, "rag", "delta")
    assert removed.returncode == 0 and "delta: 3.0.0 -> -" in removed.stdout

    synced = envplane(daemon, "env", "sync", wf, "rag")
    assert synced.returncode == 0 and synced.stdout.startswith(f"synced {wf}/rag in "), synced.stdout
    exported = envplane(daemon, "env", "export", wf, "rag", "-o", str(tmp_path / "out"))
    assert exported.returncode == 0
    assert "alpha==1.1.0" in (tmp_path / "out" / "requirements.txt").read_text()
    assert (tmp_path / "out" / "uv.lock").is_file()

    status = json.loads(envplane(daemon, "env", "status", wf, "rag", "--json").stdout)
    assert status["status"] == "READY"

    ops = json.loads(envplane(daemon, "ops", "list", "--workflow", wf, "--json").stdout)
    assert [o["operation"] for o in ops["operations"]] == ["sync", "remove", "update", "add", "create"]
    assert {o["subject"]["id"] for o in ops["operations"]} == {f"{wf}/rag"}
    shown = envplane(daemon, "ops", "show", ops["operations"][-1]["id"])
    assert shown.returncode == 0 and "create" in shown.stdout and "Installed" in shown.stdout

    events = envplane(daemon, "events", "watch", "--no-follow", "--json", "--type", "DependenciesAdded")
    ours = [json.loads(line) for line in events.stdout.splitlines() if f'"{wf}"' in line]
    assert [(e["type"], e["subject"]["id"]) for e in ours] == [("DependenciesAdded", f"{wf}/rag")]

    cleanup = envplane(daemon, "env", "cleanup", "--idle-hours", "1000", "--dry-run")
    assert "would remove 0 environment(s)" in cleanup.stdout

    deleted = envplane(daemon, "env", "delete", wf, "rag")
    assert deleted.returncode == 0 and deleted.stdout.strip() == f"deleted {wf}/rag"
    assert envplane(daemon, "env", "status", wf, "rag").returncode == 3, "it is gone"


def test_errors_have_messages_and_exit_codes(daemon: ThreadDaemon, wf: str) -> None:
    missing = envplane(daemon, "env", "status", wf, "nope")
    assert missing.returncode == 3 and f"environment {wf}/nope does not exist" in missing.stderr
    bad = envplane(daemon, "env", "create", wf, "x", "-p", "--index-url=http://evil")
    assert bad.returncode == 2 and "command-line option" in bad.stderr
    unresolvable = envplane(daemon, "env", "create", wf, "y", "-p", "broken")
    assert unresolvable.returncode == 2 and "No solution found" in unresolvable.stderr
    down = envplane(None, "env", "list", addr="127.0.0.1:1")
    assert down.returncode == 7 and "cannot reach the envplane daemon" in down.stderr


def test_pool_commands_end_to_end(daemon: ThreadDaemon, wf: str, tmp_path: Path) -> None:
    from tests.workers.handlers import BASIC, write_handler

    handler = write_handler(tmp_path, "handlers", BASIC)
    assert envplane(daemon, "env", "create", wf, "work", "-p", "alpha").returncode == 0
    pool = f"{wf}-pool"
    created = envplane(daemon, "pool", "create", pool, wf, "work", str(handler), "--size", "2", "--init-args",
                       '{"greeting": "hey"}', "--memory-limit", "1GiB")  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert f"created pool {pool}: 2 worker(s), ready" in created.stdout and "echo" in created.stdout

    executed = envplane(daemon, "pool", "exec", pool, "greet", '{"name": "bo"}')
    assert executed.returncode == 0 and executed.stdout.strip() == '"hey bo"', executed.stderr
    streamed = envplane(daemon, "pool", "stream", pool, "count", "[3]")
    assert streamed.stdout.splitlines() == ["0", "1", "2"]
    failed = envplane(daemon, "pool", "exec", pool, "fail", '{"message": "boom"}')
    assert failed.returncode == 10 and "ValueError: boom" in failed.stderr and "Traceback" in failed.stderr
    unknown = envplane(daemon, "pool", "exec", pool, "nope")
    assert unknown.returncode == 3 and "its handler's commands: acount" in unknown.stderr
    bad_json = envplane(daemon, "pool", "exec", pool, "echo", "{oops")
    assert bad_json.returncode == 2 and "ARGS is not JSON" in bad_json.stderr

    shown = envplane(daemon, "pool", "show", pool)
    assert shown.returncode == 0 and "idle" in shown.stdout and "1024 MiB" in shown.stdout
    listed = json.loads(envplane(daemon, "pool", "ls", "--json").stdout)
    assert pool in [p["name"] for p in listed]
    assert "scaled" in envplane(daemon, "pool", "scale", pool, "3").stdout
    logs = envplane(daemon, "pool", "logs", pool, "--tail", "200")
    assert "init ran" in logs.stdout and "stdout]" in logs.stdout
    removed = envplane(daemon, "pool", "rm", pool)
    assert removed.returncode == 0 and f"deleted pool {pool}" in removed.stdout
    assert envplane(daemon, "pool", "show", pool).returncode == 3
    bad_size = envplane(daemon, "pool", "create", pool, wf, "work", str(handler), "--memory-limit", "lots")
    assert bad_size.returncode == 2 and "is not a size" in bad_size.stderr
