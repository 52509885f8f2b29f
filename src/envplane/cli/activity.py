"""``envplane ops ...`` and ``envplane events watch``: the audit log and the event stream of every
capability, through ``EnvplaneClient.operations`` and ``.events``."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from envplane.api.protojson import to_json
from envplane.cli.output import AsJson, console, emit_json, operation_details, operations_table, subject_text
from envplane.client import EnvplaneClient

ops_app = typer.Typer(help="The audit log of every capability.", no_args_is_help=True)
events_app = typer.Typer(help="Domain events of every capability.", no_args_is_help=True)

Kind = Annotated[str, typer.Option("--kind", help="Only this kind of subject (environment, ...).")]
WorkflowFilter = Annotated[str, typer.Option("--workflow", help="Only this workflow.")]
NodeFilter = Annotated[str, typer.Option("--node", help="Only this node.")]


@ops_app.command("list")
def list_(
    kind: Kind = "",
    workflow_id: WorkflowFilter = "",
    node_id: NodeFilter = "",
    operation: Annotated[str, typer.Option("--operation", help="create, add, sync, ...")] = "",
    status: Annotated[str, typer.Option("--status", help="RUNNING, SUCCEEDED or FAILED.")] = "",
    limit: Annotated[int, typer.Option("--limit", help="How many, newest first.")] = 20,
    as_json: AsJson = False,
) -> None:
    """Audit records, newest first."""
    with EnvplaneClient() as client:
        result = client.operations.list(
            kind=kind, workflow_id=workflow_id, node_id=node_id, operation=operation, status=status, page_size=limit
        )
    emit_json(result) if as_json else console.print(operations_table(result.operations))


@ops_app.command()
def show(
    operation_id: Annotated[int, typer.Argument(help="The record's id (failed calls name it).")],
    as_json: AsJson = False,
) -> None:
    """One audit record, with the whole output of its tool (uv's stderr)."""
    with EnvplaneClient() as client:
        op = client.operations.get(operation_id)
    if as_json:
        emit_json(op)
        return
    console.print(operation_details(op))
    for name, text in (("stdout", op.stdout), ("stderr", op.stderr)):
        if text:
            console.rule(name)
            console.print(text, end="", markup=False, highlight=False)


@ops_app.command()
def delete(
    kind: Kind = "",
    workflow_id: WorkflowFilter = "",
    node_id: NodeFilter = "",
    before: Annotated[float, typer.Option("--before", help="Only records started before (UNIX seconds).")] = 0.0,
    as_json: AsJson = False,
) -> None:
    """Delete finished audit records (records of running operations are kept)."""
    with EnvplaneClient() as client:
        result = client.operations.delete(kind=kind, workflow_id=workflow_id, node_id=node_id, before=before)
    emit_json(result) if as_json else console.print(f"deleted {result.deleted_count} record(s)")


@events_app.command()
def watch(
    after: Annotated[int, typer.Option("--after", help="Resume after this cursor (0: the oldest kept).")] = 0,
    types: Annotated[list[str] | None, typer.Option("--type", help="Only this event type (repeatable).")] = None,
    kinds: Annotated[list[str] | None, typer.Option("--kind", help="Only this kind of subject (repeatable).")] = None,
    follow: Annotated[bool, typer.Option("--follow/--no-follow", help="Keep waiting for new events.")] = True,
    as_json: AsJson = False,
) -> None:
    """Stream domain events (Ctrl-C to stop; resume with --after CURSOR)."""
    with EnvplaneClient() as client:
        try:
            for event in client.events.watch(after, types=types or [], kinds=kinds or [], follow=follow):
                if as_json:
                    print(json.dumps(to_json(event)), flush=True)
                else:
                    console.print(
                        f"[dim]{event.cursor:>6}[/] {event.type:<32} {subject_text(event.subject)} {event.payload_json}"
                    )
        except KeyboardInterrupt:
            return
