"""The UV Venv Manager protocol (``envmanager.EnvManagerService``) as a face of envplane.

Clients generated from the original ``env_manager.proto`` talk to envplane unchanged: the same
package, service, messages and field numbers, served on envplane's gRPC port. Every RPC parses
its request, calls the one environment service (or the core's audit log, for the operations),
and converts the answer into the original's shapes and status words (``created``, ``added``,
``ACTIVE``…). What is checked here is only what the original's messages add: RemoveDeps takes no
requirements file, GetOperations pages by limit/offset, file contents must be UTF-8. Errors
become gRPC statuses through the same table as envplane.v1 (``@mapped``).
"""

from __future__ import annotations

import json
from typing import Any, TypeAlias, TypedDict, TypeVar

import grpc

from envplane.api.grpc_errors import deadline_of, mapped
from envplane.core.audit import OperationFilter, OperationRecord
from envplane.core.pagination import encode_token
from envplane.environments.identity import EnvId
from envplane.environments.service import EnvironmentService, EnvView
from envplane.environments.service.engine import ENVIRONMENT
from envplane.envmanager import env_manager_pb2 as pb
from envplane.envmanager import env_manager_pb2_grpc as pb_grpc
from envplane.errors import InvalidArgument, NotFound

Ctx: TypeAlias = grpc.aio.ServicerContext
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["EnvManagerService"].full_name
# The original's words for a ready env and a missing one; envplane's other states keep their names.
ACTIVE, NOT_EXISTS = "ACTIVE", "NOT_EXISTS"


class EnvManagerServicer(pb_grpc.EnvManagerServiceServicer):
    def __init__(self, service: EnvironmentService) -> None:
        self._svc = service
        self._activity = service.core.activity

    @mapped
    async def GetEnvStatus(self, request: pb.GetEnvStatusRequest, context: Ctx) -> pb.EnvStatusResponse:
        env = _env(request)
        try:
            view = await self._svc.status(env)
        except NotFound:
            return pb.EnvStatusResponse(**_ids(env), status=NOT_EXISTS)
        return pb.EnvStatusResponse(
            **_ids(env),
            status=ACTIVE if view.status == "READY" else view.status,
            env_path=view.env_path,
            has_pyproject=view.has_pyproject,
            has_uv_lock=view.has_lock,
            has_venv=view.has_venv,
            metadata_json=json.dumps(_metadata(view), sort_keys=True),
        )

    @mapped
    async def CreateEnv(self, request: pb.CreateEnvRequest, context: Ctx) -> pb.CreateEnvResponse:
        env = _env(request)
        view = await self._svc.create(
            env,
            list(request.packages),
            _requirements(request),
            request.python_version,
            deadline=deadline_of(context),
        )
        return pb.CreateEnvResponse(
            **_ids(env),
            env_path=view.env_path,
            python_version=view.record.python_version,
            status="created",
            pyproject_toml=view.record.pyproject_toml,
        )

    @mapped
    async def DeleteEnv(self, request: pb.DeleteEnvRequest, context: Ctx) -> pb.DeleteEnvResponse:
        env = _env(request)
        await self._svc.delete(env, deadline=deadline_of(context))  # a missing env is NOT_FOUND
        return pb.DeleteEnvResponse(**_ids(env), status="deleted")

    @mapped
    async def AddDeps(self, request: pb.DepsRequest, context: Ctx) -> pb.DepsOperationResponse:
        env = _env(request)
        outcome = await self._svc.add_deps(
            env,
            list(request.packages),
            _requirements(request),
            deadline=deadline_of(context),
        )
        return _operation_response(pb.DepsOperationResponse, env, "added", outcome.operation)

    @mapped
    async def UpdateDeps(self, request: pb.DepsRequest, context: Ctx) -> pb.DepsOperationResponse:
        env = _env(request)
        outcome = await self._svc.update_deps(
            env,
            list(request.packages),
            _requirements(request),
            deadline=deadline_of(context),
        )
        return _operation_response(pb.DepsOperationResponse, env, "updated", outcome.operation)

    @mapped
    async def RemoveDeps(self, request: pb.DepsRequest, context: Ctx) -> pb.DepsOperationResponse:
        env = _env(request)
        if request.requirements_file_content:
            raise InvalidArgument("RemoveDeps takes package names in packages, not a requirements file")
        outcome = await self._svc.remove_deps(env, list(request.packages), deadline=deadline_of(context))
        return _operation_response(pb.DepsOperationResponse, env, "removed", outcome.operation)

    @mapped
    async def ListDeps(self, request: pb.ListDepsRequest, context: Ctx) -> pb.ListDepsResponse:
        env = _env(request)
        deps = await self._svc.list_deps(env)
        return pb.ListDepsResponse(
            **_ids(env),
            dependencies=deps.declared,
            locked_versions={p.name: p.version for p in deps.locked},
        )

    @mapped
    async def SyncEnv(self, request: pb.SyncEnvRequest, context: Ctx) -> pb.SyncEnvResponse:
        env = _env(request)
        outcome = await self._svc.sync(env, deadline=deadline_of(context))
        return _operation_response(pb.SyncEnvResponse, env, "synced", outcome.operation)

    @mapped
    async def RunCode(self, request: pb.RunCodeRequest, context: Ctx) -> pb.RunCodeResponse:
        env = _env(request)
        ran = await self._svc.run_code(env, request.code, timeout=request.timeout, deadline=deadline_of(context))
        return pb.RunCodeResponse(**_ids(env), stdout=ran.stdout, stderr=ran.stderr, exit_code=ran.exit_code)

    @mapped
    async def ExportEnv(self, request: pb.ExportEnvRequest, context: Ctx) -> pb.ExportEnvResponse:
        env = _env(request)
        exported = await self._svc.export(env, deadline=deadline_of(context))
        return pb.ExportEnvResponse(**_ids(env), pyproject_toml=exported.pyproject_toml, uv_lock=exported.uv_lock)

    @mapped
    async def Cleanup(self, request: pb.CleanupRequest, context: Ctx) -> pb.CleanupResponse:
        outcome = await self._svc.cleanup(float(request.idle_hours))
        return pb.CleanupResponse(deleted=[str(e) for e in outcome.removed], checked_at_unix=int(outcome.checked_at))

    @mapped
    async def GetOperations(self, request: pb.GetOperationsRequest, context: Ctx) -> pb.OperationListResponse:
        if request.offset < 0:
            raise InvalidArgument(f"offset must be >= 0, got {request.offset}")
        if request.limit < 0:
            raise InvalidArgument(f"limit must be >= 0 (0 = the default page size), got {request.limit}")
        where = OperationFilter(
            kind=ENVIRONMENT, workflow_id=request.workflow_id, node_id=request.node_id, status=request.status.upper()
        )
        page = await self._activity.operations(
            where, page_size=request.limit, page_token=encode_token(request.offset) if request.offset else ""
        )
        return pb.OperationListResponse(
            total=page.total, limit=page.limit, offset=page.offset, items=[_operation(op) for op in page.items]
        )

    @mapped
    async def DeleteOperations(self, request: pb.DeleteOperationsRequest, context: Ctx) -> pb.DeleteOperationsResponse:
        where = OperationFilter(kind=ENVIRONMENT, workflow_id=request.workflow_id, node_id=request.node_id)
        count, node_ids = await self._activity.delete_operations(where)
        return pb.DeleteOperationsResponse(
            workflow_id=request.workflow_id,
            node_id=request.node_id,
            deleted_count=count,
            deleted_node_ids=node_ids,
        )


def _env(request: Any) -> EnvId:
    return EnvId.parse(request.workflow_id, request.node_id, request.version_id)


class _Ids(TypedDict):
    workflow_id: str
    node_id: str
    version_id: str


def _ids(env: EnvId) -> _Ids:
    """The three identity fields every response of the original protocol starts with."""
    return {"workflow_id": env.workflow_id, "node_id": env.node_id, "version_id": env.version_id}


def _requirements(request: pb.CreateEnvRequest | pb.DepsRequest) -> str:
    try:
        return request.requirements_file_content.decode("utf-8")
    except UnicodeDecodeError as exc:
        name = request.requirements_file_name or "unnamed"
        raise InvalidArgument(f"requirements_file_content ({name}) is not UTF-8 text: {exc}") from exc


_Reply = TypeVar("_Reply", pb.DepsOperationResponse, pb.SyncEnvResponse)


def _operation_response(reply: type[_Reply], env: EnvId, status: str, op: OperationRecord) -> _Reply:
    """The original's two "operation" replies share their fields: ids, status word, uv's output."""
    return reply(**_ids(env), status=status, stdout=op.stdout, stderr=op.stderr, exit_code=op.exit_code or 0)


def _metadata(view: EnvView) -> dict[str, Any]:
    r = view.record
    return {
        "status": r.status,
        "python_request": r.python_request,
        "python_version": r.python_version,
        "python_executable": view.python_executable,
        "venv_path": view.venv_path,
        "build_id": r.build_id,
        "lock_sha256": view.lock_sha256,
        "dependencies": view.dependencies,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
        "last_used_at": r.last_used_at,
        "error": r.error,
    }


def _operation(op: OperationRecord) -> pb.OperationRecord:
    return pb.OperationRecord(
        id=op.id,
        workflow_id=op.subject.workflow_id,
        node_id=op.subject.node_id,
        version_id=op.subject.version_id,
        operation=op.operation,
        status=op.status,
        started_at_unix=int(op.started_at),
        finished_at_unix=int(op.finished_at or 0),
        duration_ms=op.duration_ms or 0,
        stdout=op.stdout,
        stderr=op.stderr,
        exit_code=op.exit_code or 0,
        error=op.error,
        metadata_json=json.dumps(op.details, sort_keys=True),
    )
