"""The environment service's views -> ``envplane.v1`` messages: the one rendering both faces
serve (gRPC sends the messages, REST their protobuf JSON mapping), through ``handlers.py``."""

from __future__ import annotations

from envplane.api import messages as common
from envplane.environments import wire
from envplane.environments.identity import EnvId
from envplane.environments.service.views import CleanupOutcome, DepsView, EnvView, ExportView, OperationOutcome
from envplane.errors import InvalidArgument
from envplane.v1 import environments_pb2 as pb


def ref(env: EnvId) -> pb.EnvRef:
    return wire.ref(env.workflow_id, env.node_id, env.version_id)


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
        reused=view.reused,
    )


def deps_response(outcome: OperationOutcome) -> pb.DepsResponse:
    return pb.DepsResponse(
        environment=environment(outcome.env),
        operation=common.operation(outcome.operation),
        changes=[
            pb.VersionChange(name=name, old_version=old, new_version=new)
            for name, (old, new) in outcome.changes.items()
        ],
    )


def sync_response(outcome: OperationOutcome) -> pb.SyncEnvResponse:
    return pb.SyncEnvResponse(environment=environment(outcome.env), operation=common.operation(outcome.operation))


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


def status_filter(value: int) -> str:
    """A ListEnvs status filter: ENV_STATUS_UNSPECIFIED (0) means "any"; an unknown number
    (proto3 keeps them) is refused, naming the field."""
    if value == 0:
        return ""
    if value not in pb.EnvStatus.values():
        names = ", ".join(wire.STATUS_NAMES)
        raise InvalidArgument(f"status {value} is not an environment status: use {names} (or 0 for any)")
    return pb.EnvStatus.Name(value)  # type: ignore[arg-type]
