"""``envplane observe ...`` commands that talk to the daemon: send, import, wrap, list, stats,
recommend, export, report, pipelines, policy, forget. (``observe replay`` runs in-process: observe.py.)"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from envplane.api.protojson import to_json
from envplane.cli.output import AsJson, console, emit_json, err_console, when
from envplane.client import EnvplaneClient
from envplane.client._sync.observations import observation
from envplane.errors import EnvplaneError, InvalidArgument
from envplane.v1 import observations_pb2 as pb

Pipeline = Annotated[str, typer.Option("--pipeline", "-P", help="The pipeline (default: 'default').")]
KIND = {v.number: v.name for v in pb.Action.Kind.DESCRIPTOR.values}


def _size(text: str, name: str) -> int:
    from envplane.observations.service.traces import memory

    try:
        return memory(text)
    except ValueError:
        raise InvalidArgument(f"{name} {text!r} is not a size like 1.5GB or 800MB") from None


def _ms(text: str, name: str) -> int:
    from envplane.observations.service.traces import duration

    try:
        return int(duration(text))
    except ValueError:
        raise InvalidArgument(f"{name} {text!r} is not a duration like 90s, 3m 4s or 2h") from None


def mib(size: int) -> str:
    if size >= 2**30:
        return f"{size / 2**30:.2f} GB"
    return f"{size / 2**20:.0f} MB"


def _say(reply: pb.ObserveReply, as_json: bool) -> None:
    if as_json:
        emit_json(reply)
        return
    action = reply.action
    memory = f" memory {mib(action.memory_bytes)}" if action.memory_bytes else ""
    time_ms = f" time {action.time_ms / 1000:.0f} s" if action.time_ms else ""
    console.print(f"{KIND[action.kind]}{memory}{time_ms}: {action.reason}", highlight=False)


def send(
    process: Annotated[str, typer.Option("--process", help="The process (required).")],
    status: Annotated[str, typer.Option("--status", help="COMPLETED, FAILED, ...")] = "COMPLETED",
    pipeline: Pipeline = "",
    task_id: Annotated[str, typer.Option("--task-id")] = "",
    exit_code: Annotated[int, typer.Option("--exit")] = 0,
    memory: Annotated[str, typer.Option("--memory", help="What it was given, e.g. 4GB.")] = "",
    peak_rss: Annotated[str, typer.Option("--peak-rss", help="Its peak, e.g. 1.2GB.")] = "",
    realtime: Annotated[str, typer.Option("--realtime", help="Its run time, e.g. 3m 4s.")] = "",
    read: Annotated[str, typer.Option("--read", help="Bytes read (its input), e.g. 2GB.")] = "",
    error: Annotated[str, typer.Option("--error", help="The engine's error message.")] = "",
    as_json: AsJson = False,
) -> None:
    """Send one observation; print the action."""
    message = observation(
        pipeline=pipeline, process=process, task_id=task_id, status=status, exit_code=exit_code,
        requested_memory_bytes=_size(memory, "--memory"), peak_rss_bytes=_size(peak_rss, "--peak-rss"),
        realtime_ms=_ms(realtime, "--realtime"), read_bytes=_size(read, "--read"), error=error, source="cli",
    )  # fmt: skip
    with EnvplaneClient() as client:
        _say(client.observations.observe(message), as_json)


def trace_files(paths: list[Path]) -> list[Path]:
    """The files named, and the trace files in the folders named and below them (not READMEs,
    not time series, not hidden)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            files += [p for p in found if not p.name.startswith("README") and "timeseries" not in p.name]
        else:
            files.append(path)
    if not files:
        raise InvalidArgument("no trace files given")
    return files


def import_(
    traces: Annotated[
        list[Path], typer.Argument(help="Nextflow trace files (as Nextflow writes them, raw, CSV, .gz) or folders.")
    ],
    pipeline: Annotated[
        str, typer.Option("--pipeline", "-P", help="Default: each file's name without extensions.")
    ] = "",
    as_json: AsJson = False,
) -> None:
    """Send the tasks of trace files to the daemon, in the order they completed (again: stored once)."""
    from envplane.observations.service import traces as reader

    tasks = [task for path in trace_files(traces) for task in reader.read(path)]
    tasks.sort(key=lambda task: task.complete)

    def messages() -> Iterator[pb.TaskObservation]:
        for t in tasks:
            name = pipeline or t.workflow
            yield observation(
                pipeline=name, process=t.process, task_id=t.task_id, run=t.run, attempt=t.attempt, status=t.status,
                exit_code=t.exit or 0, requested_memory_bytes=t.request, requested_cpus=float(t.cpus),
                realtime_ms=int(t.realtime), peak_rss_bytes=t.peak_rss, read_bytes=t.input_size,
                submitted_at=t.submit / 1000, completed_at=t.complete / 1000, source="import",
                event_id=f"import:{name}:{t.run}:{t.task_id}:{t.attempt}:{t.status}",
            )  # fmt: skip

    kinds: Counter[str] = Counter()
    refused: list[str] = []
    duplicates = 0
    columns = (TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with (
        EnvplaneClient(timeout=None) as client,
        Progress(*columns, console=console, disable=as_json or not console.is_terminal) as bar,
    ):
        job = bar.add_task("import", total=len(tasks))
        for reply in client.observations.observe_stream(messages()):
            bar.advance(job)
            if reply.error:
                refused.append(reply.error)
                continue
            duplicates += reply.duplicate
            kinds[KIND[reply.action.kind]] += 1
    summary = {"tasks": len(tasks), "stored": sum(kinds.values()) - duplicates, "duplicates": duplicates,
               "refused": len(refused), "actions": dict(kinds)}  # fmt: skip
    if as_json:
        emit_json({**summary, "first_refusals": refused[:5]})
        return
    console.print(
        f"{summary['tasks']} task(s): {summary['stored']} stored, {duplicates} already stored, {len(refused)} refused; "
        + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())),
        highlight=False,
    )
    for reason in refused[:5]:
        err_console.print(f"refused: {reason}", highlight=False)


def wrap(
    command: Annotated[list[str], typer.Argument(help="The command, after --.")],
    process: Annotated[str, typer.Option("--process", help="Default: the command's name.")] = "",
    pipeline: Pipeline = "",
    task_id: Annotated[str, typer.Option("--task-id")] = "",
    memory: Annotated[str, typer.Option("--memory", help="What the task was given, e.g. 4GB.")] = "",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Do not print the action.")] = False,
) -> None:
    """Run a command, measure it (peak RSS of its tree, CPU, I/O, time, exit code), send the
    observation; exit with the command's own code (also when the daemon cannot be reached)."""
    from envplane.cli import measure

    if not command:
        raise typer.BadParameter("give the command after --: envplane observe wrap -- CMD ...")
    try:
        measured = measure.run(command)
    except OSError as exc:
        err_console.print(f"envplane observe wrap: cannot run {command[0]!r}: {exc.strerror or exc}", highlight=False)
        raise typer.Exit(127 if isinstance(exc, FileNotFoundError) else 126) from None
    message = observation(
        pipeline=pipeline, process=process or Path(command[0]).name, task_id=task_id,
        status="COMPLETED" if measured.exit_code == 0 else "FAILED", exit_code=measured.exit_code,
        requested_memory_bytes=_size(memory, "--memory"), realtime_ms=measured.realtime_ms,
        duration_ms=measured.realtime_ms, cpu_percent=measured.cpu_percent, peak_rss_bytes=measured.peak_rss,
        read_bytes=measured.read_bytes, write_bytes=measured.write_bytes, submitted_at=measured.started_at,
        completed_at=measured.completed_at, source="wrap",
    )  # fmt: skip
    try:
        with EnvplaneClient(timeout=10) as client:
            reply = client.observations.observe(message)
        if not quiet:
            action = reply.action
            sized = f" {mib(action.memory_bytes)}" if action.memory_bytes else ""
            err_console.print(
                f"envplane: peak {mib(measured.peak_rss)}, {measured.realtime_ms / 1000:.1f} s, "
                f"exit {measured.exit_code} -> {KIND[action.kind]}{sized}: {action.reason}",
                highlight=False,
            )
    except EnvplaneError as exc:
        err_console.print(f"envplane observe wrap: the observation was not sent: {exc.message}", highlight=False)
    raise typer.Exit(measured.exit_code)


def list_(
    pipeline: Pipeline = "",
    process: Annotated[str, typer.Option("--process")] = "",
    status: Annotated[str, typer.Option("--status")] = "",
    limit: Annotated[int, typer.Option("--limit", "-n", help="At most this many (oldest first).")] = 50,
    as_json: AsJson = False,
) -> None:
    """Stored observations and the actions they got."""
    with EnvplaneClient() as client:
        page = client.observations.query(pipeline=pipeline, process=process, status=status, page_size=min(limit, 500))
    if as_json:
        emit_json(page)
        return
    table = Table("id", "pipeline", "process", "task", "status", "exit", "peak", "action", "memory", "when")
    for s in page.observations[:limit]:
        o, a = s.observation, s.action
        table.add_row(
            str(s.id), o.pipeline, o.process, o.task_id, o.status, str(o.exit_code), mib(o.peak_rss_bytes),
            KIND[a.kind], mib(a.memory_bytes) if a.memory_bytes else "-", when(s.recorded_at),
        )  # fmt: skip
    console.print(table)


def stats(
    pipeline: Pipeline = "", process: Annotated[str, typer.Option("--process")] = "", as_json: AsJson = False
) -> None:
    """Per process: tasks, failures, peaks, the waste at the requests, the recommended memory."""
    with EnvplaneClient() as client:
        found = client.observations.stats(pipeline, process)
    if as_json:
        emit_json([to_json(s) for s in found])
        return
    table = Table(
        "pipeline", "process", "done", "failed", "OOM", "peak p50", "peak max", "requested", "waste GB·h", "recommended"
    )
    for s in found:
        table.add_row(
            s.pipeline, s.process, str(s.completed), str(s.failed), str(s.memory_failures), mib(s.peak_rss_p50_bytes),
            mib(s.peak_rss_max_bytes), mib(s.requested_memory_max_bytes), f"{s.wasted_gb_hours:.2f}",
            mib(s.recommended_memory_bytes),
        )  # fmt: skip
    console.print(table)


def recommend(pipeline: Pipeline = "", as_json: AsJson = False) -> None:
    """Per process: the first attempt's memory and each retry's."""
    with EnvplaneClient() as client:
        recs = client.observations.recommendations(pipeline)
    if as_json:
        emit_json(recs)
        return
    table = Table("process", "memory", "retries", "tasks", "peak max", title=f"{recs.pipeline} ({recs.policy})")
    for r in recs.recommendations:
        retries = " → ".join(mib(m) for m in r.retry_memory_bytes)
        table.add_row(r.process, mib(r.memory_bytes), retries, str(r.tasks_seen), mib(r.max_peak_rss_bytes))
    console.print(table)


def export(
    pipeline: Pipeline = "",
    format_: Annotated[str, typer.Option("--format", "-f", help="nextflow | json")] = "nextflow",
    max_memory: Annotated[str, typer.Option("--max-memory", help="resourceLimits memory, e.g. 64GB.")] = "",
    max_cpus: Annotated[float, typer.Option("--max-cpus")] = 0,
    max_time: Annotated[str, typer.Option("--max-time", help="resourceLimits time, e.g. 24h.")] = "",
    max_retries: Annotated[int, typer.Option("--max-retries")] = 0,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here (default: stdout).")] = None,
) -> None:
    """The sizes as a Nextflow config (-c FILE) or a JSON profile."""
    with EnvplaneClient() as client:
        content = client.observations.export(
            pipeline, format=format_, max_retries=max_retries, max_memory_bytes=_size(max_memory, "--max-memory"),
            max_cpus=max_cpus, max_time_ms=_ms(max_time, "--max-time"),
        )  # fmt: skip
    if output is None:
        sys.stdout.write(content)
        return
    output.write_text(content)
    console.print(f"wrote {output}")


def report(
    pipeline: Pipeline = "",
    output: Annotated[Path, typer.Option("--output", "-o", help="The HTML file.")] = Path("report.html"),
) -> None:
    """A self-contained HTML report (no network needed to open it)."""
    with EnvplaneClient(timeout=120) as client:
        page = client.observations.report(pipeline)
    output.write_text(page)
    console.print(f"wrote {output} ({len(page) // 1024} KiB)")


def pipelines(as_json: AsJson = False) -> None:
    """Every pipeline: its policy, memory cap, observations."""
    with EnvplaneClient() as client:
        found = client.observations.pipelines()
    if as_json:
        emit_json([to_json(p) for p in found])
        return
    table = Table("pipeline", "policy", "cap", "observations", "processes", "last seen")
    for p in found:
        cap = mib(p.memory_cap_bytes) if p.memory_cap_bytes else "-"
        table.add_row(p.name, p.policy, cap, str(p.observations), str(p.processes), when(p.last_seen))
    console.print(table)


def policy(
    pipeline: Annotated[str, typer.Argument(help="The pipeline.")],
    name: Annotated[
        str, typer.Option("--policy", "-p", help="rightsizer | seqera-max | witt-p95 | tovar | presets")
    ] = "",
    cap: Annotated[
        str | None, typer.Option("--cap", help="No retry asks for more, e.g. 64GB (0: the daemon's).")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Choose a pipeline's policy or memory cap."""
    with EnvplaneClient() as client:
        found = client.observations.set_pipeline(
            pipeline, policy=name, memory_cap=None if cap is None else _size(cap, "--cap")
        )
    if as_json:
        emit_json(found)
        return
    console.print(
        f"{found.name}: policy {found.policy}, cap {mib(found.memory_cap_bytes) if found.memory_cap_bytes else 'none'}"
    )


def forget(
    pipeline: Annotated[str, typer.Argument(help="The pipeline.")],
    process: Annotated[str, typer.Option("--process", help="Only this process.")] = "",
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    as_json: AsJson = False,
) -> None:
    """Delete a pipeline's observations (or one process's) and their evidence: the next
    decisions start afresh (after a tool upgrade changed its memory, say)."""
    what = f"process {process} of {pipeline}" if process else f"every observation of {pipeline}"
    if not yes and not typer.confirm(f"forget {what}?"):
        raise typer.Exit(1)
    with EnvplaneClient() as client:
        done = client.observations.forget(pipeline, process)
    if as_json:
        emit_json(done)
        return
    console.print(f"forgot {done.deleted} observation(s) of {done.processes} process(es)")


def register(app: typer.Typer) -> None:
    app.command()(send)
    app.command("import")(import_)
    app.command(context_settings={"allow_interspersed_args": False})(wrap)
    app.command("list")(list_)
    app.command()(stats)
    app.command()(recommend)
    app.command()(export)
    app.command()(report)
    app.command()(pipelines)
    app.command()(policy)
    app.command()(forget)
