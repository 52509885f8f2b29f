"""``envplane pool ...``: pools of warm workers in an environment, through ``client.workers``.

Arguments and results are JSON on the command line (``'{"text": "hi"}'`` for keyword
arguments, ``'[1, 2]'`` for positional ones); bytes show as ``{"$bytes": "<base64>"}``.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.table import Table

from envplane.api.protojson import to_json
from envplane.cli.output import AsJson, console, emit_json, err_console, when
from envplane.client import EnvplaneClient
from envplane.errors import CommandError, InvalidArgument
from envplane.v1 import workers_pb2 as pb
from envplane.workers.service.bootstrap import dumps_value, loads_value

app = typer.Typer(help="Pools of long-lived Python workers inside an environment.", no_args_is_help=True)

Name = Annotated[str, typer.Argument(help="Pool name.")]
Timeout = Annotated[float | None, typer.Option("--timeout", help="Seconds for the call, queue included.")]
Session = Annotated[str, typer.Option("--session", "-s", help="Run in this session (state kept in one worker).")]
Args = Annotated[str, typer.Argument(help="JSON: an object (keyword arguments) or an array (positional ones).")]

_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "kib": 2**10, "m": 10**6, "mb": 10**6, "mib": 2**20,
          "g": 10**9, "gb": 10**9, "gib": 2**30, "t": 10**12, "tb": 10**12, "tib": 2**40}  # fmt: skip


def parse_size(text: str, option: str) -> int:
    """``512MiB``, ``1.5G``, ``300000000`` → bytes."""
    match = _SIZE.match(text)
    unit = (match.group(2) or "").lower() if match else ""
    if not match or unit not in _UNITS:
        raise InvalidArgument(f"{option} {text!r} is not a size: use e.g. 512MiB, 2GiB, 1G or a number of bytes")
    return int(float(match.group(1)) * _UNITS[unit])


def _json_arg(text: str, what: str) -> Any:
    if not text:
        return None
    try:
        return loads_value(text)
    except ValueError as exc:
        raise InvalidArgument(f"{what} is not JSON: {exc} (quote it: '{{\"x\": 1}}')") from None


def _variables(values: list[str] | None) -> dict[str, str]:
    variables = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise InvalidArgument(f"--env {item!r}: use NAME=VALUE")
        variables[key] = value
    return variables


def _handler(handler: str) -> str:
    """A local file or folder is sent as an absolute path (the daemon has another cwd)."""
    path = Path(handler)
    return str(path.resolve()) if path.exists() else handler


def _mib(size: int) -> str:
    return f"{size / 2**20:.0f} MiB" if size else "-"


def pool_table(pools: list[pb.Pool]) -> Table:
    table = Table("pool", "env", "state", "workers", "transport", "queued", "sessions", "handler")
    for pool in pools:
        ready = sum(1 for w in pool.workers if w.state in ("idle", "busy"))
        env = f"{pool.spec.env.workflow_id}/{pool.spec.env.node_id}"
        table.add_row(
            pool.name,
            env + (f"@{pool.spec.env.version_id}" if pool.spec.env.version_id else ""),
            pool.state if not pool.error else f"{pool.state}: {pool.error[:60]}",
            f"{ready}/{len(pool.workers)}",
            pool.spec.transport,
            str(pool.queued),
            str(pool.sessions),
            pool.spec.handler,
        )
    return table


def worker_table(pool: pb.Pool) -> Table:
    title = f"{pool.name}: {pool.state}, {pool.queued} queued, {pool.sessions} sessions, python {pool.python}"
    table = Table("slot", "pid", "state", "calls", "current", "rss", "peak", "limit", "uptime", "restarts",
                  "last exit", title=title)  # fmt: skip
    for w in pool.workers:
        current = f"{w.current_command} ({w.current_seconds:.1f} s)" if w.current_command else "-"
        table.add_row(
            str(w.slot), str(w.pid or "-"), w.state, str(w.calls_served), current, _mib(w.rss_bytes),
            _mib(w.peak_rss_bytes), _mib(w.memory_limit_bytes), f"{w.uptime_seconds:.0f} s", str(w.restarts),
            w.last_exit or "-",
        )  # fmt: skip
    return table


@app.command()
def create(
    name: Name,
    workflow_id: Annotated[str, typer.Argument(help="The environment's workflow id.")],
    node_id: Annotated[str, typer.Argument(help="The environment's node id.")],
    handler: Annotated[str, typer.Argument(help="A module importable in the env, a .py file or a package folder.")],
    version: Annotated[str, typer.Option("--version", "-v", help="The environment's version id.")] = "",
    size: Annotated[int, typer.Option("--size", "-n", help="Workers kept running.")] = 1,
    max_size: Annotated[int, typer.Option("--max-size", help="Grown to while calls queue (default: --size).")] = 0,
    concurrency: Annotated[int, typer.Option(help="Calls one worker runs at once.")] = 1,
    transport: Annotated[str, typer.Option(help="pipe (fastest) or grpc.")] = "pipe",
    init_args: Annotated[str, typer.Option("--init-args", help="JSON arguments of the handler's init hook.")] = "",
    affinity: Annotated[str, typer.Option(help="Sessions: hint, strict or strict_fail_fast.")] = "hint",
    memory_limit: Annotated[str, typer.Option("--memory-limit", help="Per worker, e.g. 2GiB.")] = "",
    retry_on_oom: Annotated[bool, typer.Option("--retry-on-oom", help="Rerun an OOM call once, limit grown.")] = False,
    max_calls: Annotated[int, typer.Option("--max-calls", help="Recycle a worker after this many calls.")] = 0,
    ttl: Annotated[float, typer.Option("--ttl", help="Recycle a worker after this many seconds.")] = 0,
    threads: Annotated[int, typer.Option(help="BLAS/OpenMP threads per worker.")] = 1,
    env: Annotated[list[str] | None, typer.Option("--env", "-e", help="NAME=VALUE for the workers.")] = None,
    idempotent: Annotated[list[str] | None, typer.Option(help="A command retried once after a crash.")] = None,
    add_grpcio: Annotated[bool, typer.Option("--add-grpcio", help="grpc transport: add grpcio to the env.")] = False,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Return before the workers are ready.")] = False,
    exist_ok: Annotated[bool, typer.Option("--exist-ok", help="Succeed if it exists with this definition.")] = False,
    as_json: AsJson = False,
    timeout: Annotated[float | None, typer.Option("--timeout", help="Deadline in seconds.")] = None,
) -> None:
    """Create a pool and (unless --no-wait) wait until its workers are ready."""
    options: dict[str, Any] = {
        "min_size": size,
        "max_size": max_size,
        "concurrency": concurrency,
        "transport": transport,
        "affinity": affinity,
        "retry_on_oom": retry_on_oom,
        "max_calls": max_calls,
        "ttl_seconds": ttl,
        "threads": threads,
        "variables": _variables(env),
        "idempotent": idempotent or [],
        "add_grpcio": add_grpcio,
    }
    if memory_limit:
        options["memory_limit_bytes"] = parse_size(memory_limit, "--memory-limit")
    if init_args:
        options["init_args"] = _json_arg(init_args, "--init-args")
    with EnvplaneClient(timeout=timeout) as client:
        pool = client.workers.create_pool(
            name,
            workflow_id,
            node_id,
            _handler(handler),
            version_id=version,
            wait_ready=not no_wait,
            exist_ok=exist_ok,
            **options,
        )
    if as_json:
        emit_json(pool)
        return
    commands = ", ".join(c.name for c in pool.commands) or "(known once a worker is ready)"
    console.print(f"[green]created[/] pool {pool.name}: {len(pool.workers)} worker(s), {pool.state}")
    console.print(f"  commands: {commands}", highlight=False)


@app.command("ls")
def list_(as_json: AsJson = False) -> None:
    """List pools."""
    with EnvplaneClient() as client:
        pools = client.workers.list_pools()
    if as_json:
        emit_json([to_json(p) for p in pools])
    else:
        console.print(pool_table(pools))


@app.command()
def show(
    name: Name,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Refresh the table until Ctrl-C.")] = False,
    interval: Annotated[float, typer.Option(help="--watch refresh, seconds.")] = 1.0,
    as_json: AsJson = False,
) -> None:
    """A pool and its workers: pid, state, calls, current call, RSS, restarts, last exit."""
    with EnvplaneClient() as client:
        pool = client.workers.get_pool(name)
        if as_json:
            emit_json(pool)
            return
        if not watch:
            console.print(worker_table(pool))
            _commands(pool)
            return
        try:
            with Live(worker_table(pool), console=console, refresh_per_second=4) as live:
                while True:
                    time.sleep(interval)
                    live.update(worker_table(client.workers.get_pool(name)))
        except KeyboardInterrupt:
            pass


def _commands(pool: pb.Pool) -> None:
    for command in pool.commands:
        extra = " (session)" if command.session else ""
        console.print(f"  [bold]{command.name}[/] {command.kind}{extra}  [dim]{command.doc}[/]", highlight=False)
    if pool.error:
        err_console.print(f"error: {pool.error}", highlight=False)
        if pool.error_detail:
            err_console.print(pool.error_detail, markup=False, highlight=False)
    console.print(f"  [dim]created {when(pool.created_at)}[/]")


@app.command()
def scale(
    name: Name,
    size: Annotated[int, typer.Argument(help="Workers kept running.")],
    max_size: Annotated[int, typer.Argument(help="Grown to while calls queue (default: size).")] = 0,
) -> None:
    """Change a pool's size: new workers start, extra ones finish their calls and stop."""
    with EnvplaneClient() as client:
        pool = client.workers.scale(name, size, max_size)
    console.print(f"[green]scaled[/] {pool.name} to {pool.spec.min_size}..{pool.spec.max_size} workers")


@app.command("exec")
def exec_(
    name: Name,
    command: Annotated[str, typer.Argument(help="The handler's function.")],
    args: Args = "",
    session: Session = "",
    pickle_: Annotated[bool, typer.Option("--pickle", help="Send and receive pickles (Python values).")] = False,
    timeout: Timeout = None,
) -> None:
    """Run a command on a worker; print its value as JSON."""
    value = _json_arg(args, "ARGS")
    with EnvplaneClient(timeout=None) as client:
        try:
            result = client.workers.execute(
                name, command, value, timeout=timeout, session_id=session, use_pickle=pickle_
            )
        except CommandError as exc:
            err_console.print(exc.traceback.rstrip() or exc.message, markup=False, highlight=False)
            raise typer.Exit(10) from None
    sys.stdout.write((repr(result) if pickle_ else dumps_value(result)) + "\n")


@app.command()
def stream(
    name: Name,
    command: Annotated[str, typer.Argument(help="The handler's generator.")],
    args: Args = "",
    session: Session = "",
    timeout: Timeout = None,
) -> None:
    """Run a generator command; print each chunk as one JSON line as it comes."""
    value = _json_arg(args, "ARGS")
    with EnvplaneClient(timeout=None) as client:
        try:
            for chunk in client.workers.execute_stream(name, command, value, timeout=timeout, session_id=session):
                sys.stdout.write(dumps_value(chunk) + "\n")
                sys.stdout.flush()
        except CommandError as exc:
            err_console.print(exc.traceback.rstrip() or exc.message, markup=False, highlight=False)
            raise typer.Exit(10) from None


@app.command()
def logs(
    name: Name,
    worker: Annotated[int, typer.Option("--worker", help="Only this worker slot.")] = -1,
    tail: Annotated[int, typer.Option("--tail", "-n", help="Lines of history first.")] = 100,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Then new lines until Ctrl-C.")] = False,
    as_json: AsJson = False,
) -> None:
    """The workers' stdout and stderr."""
    with EnvplaneClient(timeout=None) as client:
        try:
            for line in client.workers.logs(name, worker=worker, tail=tail, follow=follow):
                if as_json:
                    sys.stdout.write(json.dumps(to_json(line)) + "\n")
                else:
                    stamp = time.strftime("%H:%M:%S", time.localtime(line.time))
                    sys.stdout.write(f"{stamp} [{line.worker}:{line.pid} {line.stream}] {line.text}\n")
                sys.stdout.flush()
        except KeyboardInterrupt:
            pass


@app.command("rm")
def remove(
    name: Name,
    grace: Annotated[float, typer.Option(help="Seconds running calls get to finish (pool's cancel grace).")] = 0,
) -> None:
    """Delete a pool: drain within the grace, then kill its workers."""
    with EnvplaneClient() as client:
        result = client.workers.delete_pool(name, grace=grace)
    console.print(f"[green]deleted[/] pool {result.pool.name} (audit record {result.operation_id})")
