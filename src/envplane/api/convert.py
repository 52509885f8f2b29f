"""Views -> ``envplane.v1`` messages: the one conversion both faces use.

REST renders the protobuf JSON mapping (``to_json``, re-exported here) of the same messages,
so the two faces cannot drift apart.
"""

from __future__ import annotations

import json

from envplane.api.progress_stream import Finished
from envplane.api.protojson import to_json as to_json  # re-exported for the REST face
from envplane.environments import EnvId
from envplane.environments.views import (
    CleanupOutcome,
    DepsView,
    EnvView,
    ExportView,
    OperationOutcome,
    Progress,
)
from envplane.pagination import Page
from envplane.store import EventRecord, OperationRecord
from envplane.v1 import environments_pb2 as pb


def ref(env: EnvId) -> pb.EnvRef:
    return pb.EnvRef(workflow_id=env.workflow_id, node_id=env.node_id, version_id=env.version_id)


def env_id(message: pb.EnvRef) -> EnvId:
    return EnvId.parse(message.workflow_id, message.node_id, message.version_id)


def environment(view: EnvView) -> pb.Environment:
    r = view.record
    return pb.Environment(
        ref=ref(view.id),
        status=pb.EnvStatus.Value(r.status),
        python_request=r.python_request,
        python_version=r.python_version,
        env_path=view.env_path,
        venv_path=view.venv_path,
        python_executable=view.python_executable,
        build_id=r.build_id,
        dependencies=view.dependencies,
        created_at=r.created_at,
        updated_at=r.updated_at,
        last_used_at=r.last_used_at,
        error=r.error,
        busy_with=view.busy_with,
        has_pyproject=view.has_pyproject,
        has_uv_lock=view.has_lock,
        has_venv=view.has_venv,
        lock_sha256=view.lock_sha256,
    )


def operation(op: OperationRecord) -> pb.Operation:
    return pb.Operation(
        id=op.id,
        ref=pb.EnvRef(workflow_id=op.workflow_id, node_id=op.node_id, version_id=op.version_id),
        operation=op.operation,
        status=op.status,
        started_at=op.started_at,
        finished_at=op.finished_at or 0.0,
        duration_ms=op.duration_ms or 0,
        stdout=op.stdout,
        stderr=op.stderr,
        exit_code=op.exit_code or 0,
        error=op.error,
        metadata_json=json.dumps(op.details or {}, sort_keys=True),
    )


def deps_response(outcome: OperationOutcome) -> pb.DepsResponse:
    return pb.DepsResponse(
        environment=environment(outcome.env),
        operation=operation(outcome.operation),
        changes=[
            pb.VersionChange(name=name, old_version=old, new_version=new)
            for name, (old, new) in outcome.changes.items()
        ],
    )


def list_envs(page: Page[EnvView]) -> pb.ListEnvsResponse:
    return pb.ListEnvsResponse(
        environments=[environment(v) for v in page.items],
        next_page_token=page.next_page_token,
        total=page.total,
    )


def list_deps(view: DepsView) -> pb.ListDepsResponse:
    return pb.ListDepsResponse(
        ref=ref(view.id),
        declared=view.declared,
        locked=[pb.LockedPackage(name=p.name, version=p.version, source=p.source) for p in view.locked],
    )


def export(view: ExportView) -> pb.ExportEnvResponse:
    return pb.ExportEnvResponse(
        ref=ref(view.id),
        pyproject_toml=view.pyproject_toml,
        uv_lock=view.uv_lock,
        requirements_txt=view.requirements_txt,
    )


def cleanup(outcome: CleanupOutcome) -> pb.CleanupResponse:
    return pb.CleanupResponse(
        removed=[ref(e) for e in outcome.removed],
        builds_removed=outcome.builds_removed,
        dry_run=outcome.dry_run,
        checked_at=outcome.checked_at,
    )


def operations(page: Page[OperationRecord]) -> pb.GetOperationsResponse:
    return pb.GetOperationsResponse(
        operations=[operation(o) for o in page.items],
        next_page_token=page.next_page_token,
        total=page.total,
    )


def event(record: EventRecord) -> pb.Event:
    return pb.Event(
        cursor=record.cursor,
        type=record.type,
        ref=pb.EnvRef(workflow_id=record.workflow_id, node_id=record.node_id, version_id=record.version_id),
        occurred_at=record.occurred_at,
        payload_json=json.dumps(record.payload, sort_keys=True),
    )


def progress(item: Progress, view: EnvView | None = None) -> pb.CreateEnvProgress:
    message = pb.CreateEnvProgress(phase=item.phase, message=item.message)
    if view is not None:
        message.environment.CopyFrom(environment(view))
    return message


def stream_progress(item: Progress | Finished[EnvView]) -> pb.CreateEnvProgress:
    """One item of a streamed create; the last carries the env."""
    if isinstance(item, Finished):
        return progress(item.progress, item.result)
    return progress(item)


def status_name(value: int) -> str:
    """ENV_STATUS_UNSPECIFIED (0) means "any"."""
    return "" if value == 0 else pb.EnvStatus.Name(value)  # type: ignore[arg-type]
