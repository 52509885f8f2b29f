"""Rendering for the CLI: rich tables for people, ``--json`` (protobuf JSON mapping) for scripts."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Iterable
from typing import Annotated, Any

import typer
from google.protobuf.message import Message
from rich.console import Console
from rich.table import Table

from envplane.api.protojson import to_json
from envplane.v1 import common_pb2
from envplane.v1 import environments_pb2 as pb

console = Console()
err_console = Console(stderr=True, soft_wrap=True)  # messages are grepped: never wrap them

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def emit_json(value: Message | dict[str, Any] | list[Any]) -> None:
    data = to_json(value) if isinstance(value, Message) else value
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


def when(seconds: float) -> str:
    if not seconds:
        return "-"
    return dt.datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M:%S")


def ref_text(ref: pb.EnvRef) -> str:
    if not ref.workflow_id:
        return "-"
    base = f"{ref.workflow_id}/{ref.node_id}"
    return f"{base}@{ref.version_id}" if ref.version_id else base


def subject_text(subject: common_pb2.Subject) -> str:
    """``environment wf/node@v2``; a kind-wide operation shows the kind alone."""
    return f"{subject.kind} {subject.id}" if subject.id else subject.kind or "-"


def env_status_name(env: pb.Environment) -> str:
    return pb.EnvStatus.Name(env.status)


def env_table(envs: Iterable[pb.Environment]) -> Table:
    table = Table("environment", "status", "python", "deps", "build", "last used")
    for env in envs:
        table.add_row(
            ref_text(env.ref),
            env_status_name(env) + (f" ({env.busy_with})" if env.busy_with else ""),
            env.python_version or env.python_request,
            str(len(env.dependencies)),
            env.build_id[:12],
            when(env.last_used_at),
        )
    return table


def env_details(env: pb.Environment) -> Table:
    table = Table.grid(padding=(0, 2))
    rows = [
        ("environment", ref_text(env.ref)),
        ("status", env_status_name(env)),
        ("python", f"{env.python_version} (asked: {env.python_request})"),
        ("path", env.env_path),
        ("python executable", env.python_executable),
        ("build", env.build_id),
        ("dependencies", ", ".join(env.dependencies) or "-"),
        ("created", when(env.created_at)),
        ("updated", when(env.updated_at)),
        ("last used", when(env.last_used_at)),
    ]
    if env.error:
        rows.append(("error", env.error))
    if env.busy_with:
        rows.append(("busy with", env.busy_with))
    for key, value in rows:
        table.add_row(f"[bold]{key}[/]", value)
    return table


def operations_table(ops: Iterable[common_pb2.Operation]) -> Table:
    table = Table("id", "subject", "operation", "status", "started", "ms", "error")
    for op in ops:
        table.add_row(
            str(op.id),
            subject_text(op.subject),
            op.operation,
            op.status,
            when(op.started_at),
            str(op.duration_ms),
            op.error.splitlines()[0] if op.error else "",
        )
    return table


def operation_details(op: common_pb2.Operation) -> Table:
    table = Table.grid(padding=(0, 2))
    rows = [
        ("operation", f"{op.id}: {op.operation}"),
        ("subject", subject_text(op.subject)),
        ("status", op.status + (f" (exit code {op.exit_code})" if op.exit_code else "")),
        ("started", when(op.started_at)),
        ("duration", f"{op.duration_ms} ms"),
        ("details", op.metadata_json),
    ]
    if op.error:
        rows.append(("error", op.error))
    for key, value in rows:
        table.add_row(f"[bold]{key}[/]", value)
    return table
