"""One function per ``envplane.v1.EnvironmentService`` RPC: request message -> service call ->
reply message. The gRPC servicer and the REST router both call these, so the two faces take the
same fields and give the same answers; only the transport around them differs.

``deadline`` is a ``time.monotonic()`` instant (or None), which each face derives from its own
transport (the gRPC deadline, the ``X-Request-Timeout`` header).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator

from envplane.api import messages as common
from envplane.api.progress_stream import Finished, progress_stream
from envplane.core.progress import ProgressCallback
from envplane.environments import messages
from envplane.environments.service import EnvironmentService, EnvView, ProjectFiles
from envplane.v1 import environments_pb2 as pb


def _project(request: pb.CreateEnvRequest) -> ProjectFiles | None:
    if request.pyproject_toml or request.uv_lock:
        return ProjectFiles(request.pyproject_toml, request.uv_lock)
    return None


async def _create(
    service: EnvironmentService,
    request: pb.CreateEnvRequest,
    deadline: float | None,
    on_progress: ProgressCallback | None = None,
) -> EnvView:
    return await service.create(
        messages.env_id(request.ref),
        list(request.packages),
        request.requirements,
        request.python_version,
        project=_project(request),
        deadline=deadline,
        fail_if_busy=request.fail_if_busy,
        exist_ok=request.exist_ok,
        on_progress=on_progress,
    )


async def create_env(
    service: EnvironmentService, request: pb.CreateEnvRequest, *, deadline: float | None
) -> pb.Environment:
    return messages.environment(await _create(service, request, deadline))


async def create_env_stream(
    service: EnvironmentService, request: pb.CreateEnvRequest, *, deadline: float | None
) -> AsyncGenerator[pb.CreateEnvProgress, None]:
    """The create's progress as it happens; the last message carries the env. The request is
    checked before the first message, so a bad one fails the call, not the stream."""
    messages.env_id(request.ref)
    stream = progress_stream(lambda on_progress: _create(service, request, deadline, on_progress))
    async with contextlib.aclosing(stream):
        async for item in stream:
            if isinstance(item, Finished):
                message = pb.CreateEnvProgress(phase=item.progress.phase, message=item.progress.message)
                message.environment.CopyFrom(messages.environment(item.result))
                yield message
            else:
                yield pb.CreateEnvProgress(phase=item.phase, message=item.message)


async def get_env_status(service: EnvironmentService, request: pb.GetEnvStatusRequest) -> pb.Environment:
    return messages.environment(await service.status(messages.env_id(request.ref)))


async def list_envs(service: EnvironmentService, request: pb.ListEnvsRequest) -> pb.ListEnvsResponse:
    page = await service.list_envs(
        workflow_id=request.workflow_id,
        node_id=request.node_id,
        status=messages.status_filter(request.status),
        page_size=request.page_size,
        page_token=request.page_token,
    )
    return pb.ListEnvsResponse(
        environments=[messages.environment(v) for v in page.items],
        next_page_token=page.next_page_token,
        total=page.total,
    )


async def delete_env(
    service: EnvironmentService, request: pb.DeleteEnvRequest, *, deadline: float | None
) -> pb.DeleteEnvResponse:
    env = messages.env_id(request.ref)
    op = await service.delete(env, deadline=deadline, fail_if_busy=request.fail_if_busy)
    return pb.DeleteEnvResponse(ref=messages.ref(env), operation=common.operation(op))


async def add_deps(service: EnvironmentService, request: pb.DepsRequest, *, deadline: float | None) -> pb.DepsResponse:
    outcome = await service.add_deps(
        messages.env_id(request.ref),
        list(request.packages),
        request.requirements,
        deadline=deadline,
        fail_if_busy=request.fail_if_busy,
    )
    return messages.deps_response(outcome)


async def update_deps(
    service: EnvironmentService, request: pb.DepsRequest, *, deadline: float | None
) -> pb.DepsResponse:
    outcome = await service.update_deps(
        messages.env_id(request.ref),
        list(request.packages),
        request.requirements,
        deadline=deadline,
        fail_if_busy=request.fail_if_busy,
    )
    return messages.deps_response(outcome)


async def remove_deps(
    service: EnvironmentService, request: pb.DepsRequest, *, deadline: float | None
) -> pb.DepsResponse:
    outcome = await service.remove_deps(
        messages.env_id(request.ref), list(request.packages), deadline=deadline, fail_if_busy=request.fail_if_busy
    )
    return messages.deps_response(outcome)


async def list_deps(service: EnvironmentService, request: pb.ListDepsRequest) -> pb.ListDepsResponse:
    return messages.list_deps(await service.list_deps(messages.env_id(request.ref)))


async def sync_env(
    service: EnvironmentService, request: pb.SyncEnvRequest, *, deadline: float | None
) -> pb.SyncEnvResponse:
    outcome = await service.sync(messages.env_id(request.ref), deadline=deadline, fail_if_busy=request.fail_if_busy)
    return messages.sync_response(outcome)


async def export_env(
    service: EnvironmentService, request: pb.ExportEnvRequest, *, deadline: float | None
) -> pb.ExportEnvResponse:
    return messages.export(await service.export(messages.env_id(request.ref), deadline=deadline))


async def cleanup(service: EnvironmentService, request: pb.CleanupRequest) -> pb.CleanupResponse:
    return messages.cleanup(await service.cleanup(request.idle_hours, dry_run=request.dry_run))
