"""``envplane env ...``: every environment operation, through ``EnvplaneClient.environments``.

The audit log and the event stream span capabilities: ``envplane ops`` and ``envplane events``
(``cli/activity.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from envplane.api.protojson import to_json
from envplane.cli.output import AsJson, console, emit_json, env_details, env_table, ref_text
from envplane.client import EnvplaneClient
from envplane.errors import InvalidArgument
from envplane.v1 import environments_pb2 as pb

app = typer.Typer(help="Per-node uv environments.", no_args_is_help=True)

Workflow = Annotated[str, typer.Argument(help="Workflow id.")]
Node = Annotated[str, typer.Argument(help="Node id.")]
Version = Annotated[str, typer.Option("--version", "-v", help="Version id (optional).")]
NoWait = Annotated[bool, typer.Option("--no-wait", help="Fail at once if the env is busy.")]
Timeout = Annotated[float | None, typer.Option("--timeout", help="Deadline in seconds.")]
Packages = Annotated[list[str] | None, typer.Option("--package", "-p", help="PEP 508 requirement (repeatable).")]
ReqFile = Annotated[
    Path | None,
    typer.Option("--requirements", "-r", help="A requirements.txt file.", exists=True, dir_okay=False),
]


def _client(timeout: float | None = None) -> EnvplaneClient:
    return EnvplaneClient(timeout=timeout)


def _requirements(path: Path | None) -> str:
    return path.read_text() if path else ""


def _project_files(folder: Path | None) -> tuple[str, str]:
    """``pyproject.toml`` and ``uv.lock`` of ``--from DIR`` (what ``env export -o DIR`` writes)."""
    if folder is None:
        return "", ""
    texts = []
    for name in ("pyproject.toml", "uv.lock"):
        path = folder / name
        if not path.is_file():
            raise InvalidArgument(
                f"--from {folder}: there is no {name} in it (give a folder with pyproject.toml and uv.lock)"
            )
        texts.append(path.read_text())
    return texts[0], texts[1]


def _show_deps_outcome(result: pb.DepsResponse, as_json: bool, verb: str) -> None:
    if as_json:
        emit_json(result)
        return
    console.print(
        f"[green]{verb}[/] {ref_text(result.environment.ref)} "
        f"in {result.operation.duration_ms} ms (build {result.environment.build_id[:12]})"
    )
    for change in result.changes:
        old, new = change.old_version or "-", change.new_version or "-"
        console.print(f"  {change.name}: {old} -> {new}")
    if not result.changes:
        console.print("  no locked version changed")


@app.command()
def create(
    workflow_id: Workflow,
    node_id: Node,
    version: Version = "",
    package: Packages = None,
    requirements: ReqFile = None,
    python: Annotated[str, typer.Option("--python", help="Python version, e.g. 3.11.")] = "",
    exist_ok: Annotated[
        bool, typer.Option("--exist-ok", help="Succeed if the env exists and was made from the same spec.")
    ] = False,
    from_dir: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="Create from DIR/pyproject.toml and DIR/uv.lock, installed as locked (no resolution).",
            file_okay=False,
            exists=True,
        ),
    ] = None,
    as_json: AsJson = False,
    timeout: Timeout = None,
) -> None:
    """Create an environment, showing uv's progress."""
    pyproject_toml, uv_lock = _project_files(from_dir)
    with _client(timeout) as client:
        stream = client.environments.create_stream(
            workflow_id,
            node_id,
            version_id=version,
            packages=package or [],
            requirements=_requirements(requirements),
            python_version=python,
            pyproject_toml=pyproject_toml,
            uv_lock=uv_lock,
            exist_ok=exist_ok,
        )
        final: pb.Environment | None = None
        if as_json:
            for item in stream:
                if item.HasField("environment"):
                    final = item.environment
        else:
            columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
            with Progress(*columns, console=console, transient=True) as bar:
                task = bar.add_task("starting", total=None)
                for item in stream:
                    if item.HasField("environment"):
                        final = item.environment
                    elif item.phase == "uv":
                        console.print(f"  [dim]{item.message}[/]")
                    else:
                        bar.update(task, description=f"[bold]{item.phase}[/] {item.message}")
    assert final is not None, "the stream ended without a final environment"
    if as_json:
        emit_json(final)
    else:
        console.print(f"[green]{'reusing' if final.reused else 'created'}[/] {ref_text(final.ref)}")
        console.print(env_details(final))


@app.command("list")
def list_(
    workflow_id: Annotated[str, typer.Option("--workflow", help="Only this workflow.")] = "",
    node_id: Annotated[str, typer.Option("--node", help="Only this node.")] = "",
    status: Annotated[str, typer.Option("--status", help="CREATING, READY, FAILED or BROKEN.")] = "",
    as_json: AsJson = False,
) -> None:
    """List environments (all pages)."""
    with _client() as client:
        envs = list(client.environments.iter(workflow_id=workflow_id, node_id=node_id, status=status))
    if as_json:
        emit_json([to_json(e) for e in envs])
    else:
        console.print(env_table(envs))


@app.command()
def status(workflow_id: Workflow, node_id: Node, version: Version = "", as_json: AsJson = False) -> None:
    """Show one environment."""
    with _client() as client:
        env = client.environments.get(workflow_id, node_id, version_id=version)
    emit_json(env) if as_json else console.print(env_details(env))


@app.command()
def deps(workflow_id: Workflow, node_id: Node, version: Version = "", as_json: AsJson = False) -> None:
    """Declared specs and locked versions."""
    with _client() as client:
        result = client.environments.list_deps(workflow_id, node_id, version_id=version)
    if as_json:
        emit_json(result)
        return
    console.print("[bold]declared:[/] " + (", ".join(result.declared) or "-"))
    for package in result.locked:
        console.print(f"  {package.name}=={package.version}  [dim]{package.source}[/]")


@app.command()
def add(
    workflow_id: Workflow,
    node_id: Node,
    packages: Annotated[list[str], typer.Argument(help="PEP 508 requirements.")],
    version: Version = "",
    no_wait: NoWait = False,
    as_json: AsJson = False,
    timeout: Timeout = None,
) -> None:
    """Add dependencies (resolved, locked and installed atomically)."""
    with _client(timeout) as client:
        result = client.environments.add_deps(workflow_id, node_id, packages, version_id=version, fail_if_busy=no_wait)
    _show_deps_outcome(result, as_json, "added to")


@app.command()
def update(
    workflow_id: Workflow,
    node_id: Node,
    packages: Annotated[list[str] | None, typer.Argument(help="Names or specs; none = everything.")] = None,
    version: Version = "",
    no_wait: NoWait = False,
    as_json: AsJson = False,
    timeout: Timeout = None,
) -> None:
    """Upgrade dependencies to the newest versions their specs allow."""
    with _client(timeout) as client:
        result = client.environments.update_deps(
            workflow_id, node_id, packages or [], version_id=version, fail_if_busy=no_wait
        )
    _show_deps_outcome(result, as_json, "updated")


@app.command()
def remove(
    workflow_id: Workflow,
    node_id: Node,
    packages: Annotated[list[str], typer.Argument(help="Names to remove.")],
    version: Version = "",
    no_wait: NoWait = False,
    as_json: AsJson = False,
    timeout: Timeout = None,
) -> None:
    """Remove dependencies."""
    with _client(timeout) as client:
        result = client.environments.remove_deps(
            workflow_id, node_id, packages, version_id=version, fail_if_busy=no_wait
        )
    _show_deps_outcome(result, as_json, "removed from")


@app.command()
def sync(
    workflow_id: Workflow,
    node_id: Node,
    version: Version = "",
    no_wait: NoWait = False,
    as_json: AsJson = False,
    timeout: Timeout = None,
) -> None:
    """Make the venv match the lock (rebuilds a missing venv)."""
    with _client(timeout) as client:
        result = client.environments.sync(workflow_id, node_id, version_id=version, fail_if_busy=no_wait)
    if as_json:
        emit_json(result)
    else:
        console.print(f"[green]synced[/] {ref_text(result.environment.ref)} in {result.operation.duration_ms} ms")


@app.command()
def export(
    workflow_id: Workflow,
    node_id: Node,
    version: Version = "",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the three files into this folder.", file_okay=False),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Export pyproject.toml, uv.lock and a pinned requirements.txt."""
    with _client() as client:
        result = client.environments.export(workflow_id, node_id, version_id=version)
    if as_json:
        emit_json(result)
    elif output:
        output.mkdir(parents=True, exist_ok=True)
        (output / "pyproject.toml").write_text(result.pyproject_toml)
        (output / "uv.lock").write_text(result.uv_lock)
        (output / "requirements.txt").write_text(result.requirements_txt)
        console.print(f"wrote pyproject.toml, uv.lock, requirements.txt to {output}")
    else:
        console.print(result.requirements_txt, end="", markup=False, highlight=False)


@app.command()
def delete(
    workflow_id: Workflow,
    node_id: Node,
    version: Version = "",
    no_wait: NoWait = False,
    as_json: AsJson = False,
    timeout: Timeout = None,
) -> None:
    """Delete an environment."""
    with _client(timeout) as client:
        result = client.environments.delete(workflow_id, node_id, version_id=version, fail_if_busy=no_wait)
    emit_json(result) if as_json else console.print(f"[green]deleted[/] {ref_text(result.ref)}")


@app.command()
def cleanup(
    idle_hours: Annotated[float, typer.Option("--idle-hours", help="Remove envs unused this long.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only report what would go.")] = False,
    as_json: AsJson = False,
) -> None:
    """Delete environments idle for N hours, and builds nothing uses."""
    with _client() as client:
        result = client.environments.cleanup(idle_hours, dry_run=dry_run)
    if as_json:
        emit_json(result)
        return
    verb = "would remove" if result.dry_run else "removed"
    console.print(f"{verb} {len(result.removed)} environment(s), {len(result.builds_removed)} build(s)")
    for ref in result.removed:
        console.print(f"  {ref_text(ref)}")
