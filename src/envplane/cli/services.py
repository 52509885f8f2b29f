"""``envplane services ...``: the backing services of the daemon's service TOML, through
``client.services``.

``up`` shows each service's state live as it changes (dependencies come along); with
``--wait`` it returns only once all are healthy, and exits non-zero (5) with the failing
probe's last output when one is not. ``down`` stops dependents first. ``pull`` shows the
engine's own progress per layer.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated

import typer
from rich.live import Live
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn
from rich.table import Table

from envplane.api.protojson import to_json
from envplane.cli.output import AsJson, console, emit_json, when
from envplane.client import EnvplaneClient
from envplane.v1 import services_pb2 as pb

app = typer.Typer(help="Backing services (Redis, PostgreSQL, ...): local processes or Docker.", no_args_is_help=True)

Names = Annotated[list[str] | None, typer.Argument(help="Service names (dependencies come along).", show_default=False)]
STYLE = {
    "healthy": "green",
    "running": "green",
    "exited": "cyan",
    "unhealthy": "yellow",
    "restarting": "yellow",
    "waiting": "dim",
    "starting": "blue",
    "stopping": "blue",
    "failed": "red",
    "skipped": "red",
    "stopped": "dim",
}


def _state(state: str) -> str:
    return f"[{STYLE.get(state, 'white')}]{state}[/]"


def _progress_table(rows: dict[str, pb.ServiceProgress], started: float) -> Table:
    table = Table(title=f"services ({time.monotonic() - started:.1f} s)", title_justify="left")
    for column in ("service", "state", "message"):
        table.add_column(column)
    for name, row in rows.items():
        table.add_row(name, _state(row.state), row.message)
    return table


@app.command()
def up(
    names: Names = None,
    wait: Annotated[bool, typer.Option("--wait", help="Until every service is healthy (exit 5 if not).")] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds for --wait (default: the daemon's, 120).")] = 0,
    as_json: AsJson = False,
) -> None:
    """Start services and their dependencies, showing each change as it happens."""
    if not names:
        raise typer.BadParameter("name at least one service (envplane services ps lists them)")
    rows: dict[str, pb.ServiceProgress] = {}
    started = time.monotonic()
    with EnvplaneClient(timeout=None) as client:
        stream = client.services.up(names, wait=wait, timeout=timeout)
        if as_json or not console.is_terminal:
            for item in stream:
                if as_json:
                    sys.stdout.write(json.dumps(to_json(item)) + "\n")
                else:  # "redis: healthy: +PONG", not "redis: healthy healthy: +PONG"
                    said = item.message if item.message.startswith(item.state) else f"{item.state}: {item.message}"
                    sys.stdout.write(f"{item.service}: {said}\n")
                sys.stdout.flush()
            return
        with Live(_progress_table(rows, started), console=console, refresh_per_second=8) as live:
            for item in stream:
                rows[item.service] = item
                live.update(_progress_table(rows, started))
    console.print(f"[green]up[/] in {time.monotonic() - started:.2f} s")


@app.command()
def down(
    names: Names = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Seconds of grace before SIGKILL (default: each one's).")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Stop services (what depends on them first), or all of them."""
    with EnvplaneClient(timeout=None) as client:
        results = client.services.down(names or [], timeout=timeout)
    if as_json:
        emit_json([to_json(r) for r in results])
        return
    for result in results:
        mark = "[green]ok[/]" if result.ok else "[red]failed[/]"
        console.print(f"{mark} {result.name}: {result.message}")
    if not results:
        console.print("nothing was running")
    if not all(r.ok for r in results):
        raise typer.Exit(5)


@app.command()
def restart(
    name: Annotated[str, typer.Argument(help="Service name.")],
    timeout: Annotated[float | None, typer.Option("--timeout", help="Seconds of grace before SIGKILL.")] = None,
) -> None:
    """Stop a service, start it again, and wait until it is healthy."""
    with EnvplaneClient(timeout=None) as client:
        service = client.services.restart(name, timeout=timeout)
    console.print(f"{service.name}: {_state(service.state)} {service.message}")


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB" if size else ""


def status_table(services: list[pb.Service], *, everything: bool) -> Table:
    table = Table()
    for column in ("service", "runtime", "state", "pid / container", "ports", "up", "restarts", "cpu", "memory"):
        table.add_column(column)
    for s in services:
        if not everything and s.state == "stopped" and not s.restarts:
            continue
        where = s.container_id[:12] if s.container_id else (str(s.pid) if s.pid else "")
        table.add_row(
            s.name,
            s.runtime,
            _state(s.state),
            where,
            ", ".join(s.ports),
            when(s.started_at) if s.started_at else "",
            str(s.restarts),
            f"{s.cpu_percent:.1f}%" if s.pid or s.container_id else "",
            _mib(s.memory_bytes),
        )
    return table


@app.command()
def ps(
    names: Names = None,
    all_: Annotated[bool, typer.Option("--all", "-a", help="Also the defined services that never ran.")] = False,
    as_json: AsJson = False,
) -> None:
    """Services: state, pid or container, ports, uptime, restarts, CPU and memory."""
    with EnvplaneClient() as client:
        services = client.services.status(names or [])
    if as_json:
        emit_json([to_json(s) for s in services])
        return
    console.print(status_table(services, everything=all_ or bool(names)))
    for s in services:
        if s.state in ("failed", "unhealthy", "skipped") and (names or s.message):
            console.print(f"[red]{s.name}[/]: {s.message}")
            if s.probe_output:
                console.print(f"  last probe output: {s.probe_output.strip()}")


@app.command()
def logs(
    name: Annotated[str, typer.Argument(help="Service name.")],
    tail: Annotated[int, typer.Option("--tail", "-n", help="The last N lines (0 = all).")] = 100,
    since: Annotated[float, typer.Option("--since", help="Only lines written in the last N seconds.")] = 0,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Then new lines until Ctrl-C.")] = False,
    as_json: AsJson = False,
) -> None:
    """A service's stdout and stderr, each line with the time it was written."""
    with EnvplaneClient(timeout=None) as client:
        try:
            start = time.time() - since if since else 0.0
            for line in client.services.logs(name, tail=tail, since=start, follow=follow):
                if as_json:
                    sys.stdout.write(json.dumps(to_json(line)) + "\n")
                else:
                    stamp = time.strftime("%H:%M:%S", time.localtime(line.timestamp))
                    millis = int(line.timestamp * 1000) % 1000
                    sys.stdout.write(f"{stamp}.{millis:03d} {line.stream:6} {line.text}\n")
                sys.stdout.flush()
        except KeyboardInterrupt:
            pass


@app.command()
def health(
    names: Names = None,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Then each change until Ctrl-C.")] = False,
    as_json: AsJson = False,
) -> None:
    """Each service's health now (with --watch, then each change as it happens). Exits 5 when
    a service named (or, naming none, one that runs) is not healthy."""
    with EnvplaneClient(timeout=None) as client:
        if not watch:
            services = [s for s in client.services.status(names or []) if names or s.state != "stopped"]
            if as_json:
                emit_json([to_json(s) for s in services])
            healthy = [s.state == "healthy" or (s.state == "running" and not s.probe) for s in services]
            for s, ok in zip(services, healthy, strict=True):
                if not as_json:
                    mark = "[green]healthy[/]" if ok else "[red]not healthy[/]"
                    console.print(f"{s.name}: {mark} ({_state(s.state)}) {s.probe_output.strip()[:200]}")
            if not all(healthy):
                raise typer.Exit(5)
            return
        try:
            for update in client.services.health(names or [], heartbeat=5.0):
                if update.heartbeat:
                    continue
                if as_json:
                    sys.stdout.write(json.dumps(to_json(update)) + "\n")
                    sys.stdout.flush()
                else:
                    mark = "[green]healthy[/]" if update.healthy else "[red]not healthy[/]"
                    console.print(f"{update.service}: {mark} ({_state(update.state)}) {update.message}")
        except KeyboardInterrupt:
            pass


@app.command()
def pull(
    images: Annotated[
        list[str] | None, typer.Argument(help="Images (default: every Docker service's).", show_default=False)
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Pull images, with the engine's progress for each layer."""
    with EnvplaneClient(timeout=None) as client:
        stream = client.services.pull(images or [])
        if as_json or not console.is_terminal:
            for step in stream:
                if as_json:
                    sys.stdout.write(json.dumps(to_json(step)) + "\n")
                else:
                    sys.stdout.write(f"{step.image} {step.layer} {step.status} {step.current}/{step.total}\n")
            return
        tasks: dict[tuple[str, str], TaskID] = {}
        columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn())
        with Progress(*columns, console=console) as progress:
            for step in stream:
                if step.error:
                    console.print(f"[red]{step.image}: {step.error}[/]")
                    raise typer.Exit(7)
                key = (step.image, step.layer)
                if key not in tasks:
                    tasks[key] = progress.add_task(f"{step.image} {step.layer}".strip(), total=step.total or None)
                progress.update(
                    tasks[key],
                    description=f"{step.image} {step.layer} {step.status}".strip(),
                    completed=step.current or (step.total if step.percent == 100 else 0),
                    total=step.total or None,
                )
    console.print("[green]pulled[/]")
