"""The gRPC face of the environment service: parse, call, convert. No logic lives here."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TypeAlias

import grpc

from envplane.api import convert
from envplane.api.grpc_errors import deadline_of, mapped
from envplane.api.progress_stream import progress_stream
from envplane.environments import EnvironmentService
from envplane.v1 import environments_pb2 as pb
from envplane.v1 import environments_pb2_grpc as pb_grpc

Ctx: TypeAlias = grpc.aio.ServicerContext


class EnvironmentServicer(pb_grpc.EnvironmentServiceServicer):
    def __init__(self, service: EnvironmentService) -> None:
        self._svc = service

    @mapped
    async def CreateEnv(self, request: pb.CreateEnvRequest, context: Ctx) -> pb.Environment:
        view = await self._svc.create(
            convert.env_id(request.ref),
            list(request.packages),
            request.requirements,
            request.python_version,
            deadline=deadline_of(context),
            fail_if_busy=request.fail_if_busy,
            exist_ok=request.exist_ok,
        )
        return convert.environment(view)

    @mapped
    async def CreateEnvStream(self, request: pb.CreateEnvRequest, context: Ctx) -> AsyncIterator[pb.CreateEnvProgress]:
        env = convert.env_id(request.ref)
        stream = progress_stream(
            lambda on_progress: self._svc.create(
                env,
                list(request.packages),
                request.requirements,
                request.python_version,
                deadline=deadline_of(context),
                fail_if_busy=request.fail_if_busy,
                exist_ok=request.exist_ok,
                on_progress=on_progress,
            )
        )
        async with contextlib.aclosing(stream):
            async for item in stream:
                yield convert.stream_progress(item)

    @mapped
    async def GetEnvStatus(self, request: pb.GetEnvStatusRequest, context: Ctx) -> pb.Environment:
        return convert.environment(await self._svc.status(convert.env_id(request.ref)))

    @mapped
    async def ListEnvs(self, request: pb.ListEnvsRequest, context: Ctx) -> pb.ListEnvsResponse:
        page = await self._svc.list_envs(
            workflow_id=request.workflow_id,
            node_id=request.node_id,
            status=convert.status_name(request.status),
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return convert.list_envs(page)

    @mapped
    async def DeleteEnv(self, request: pb.DeleteEnvRequest, context: Ctx) -> pb.DeleteEnvResponse:
        env = convert.env_id(request.ref)
        op = await self._svc.delete(env, deadline=deadline_of(context), fail_if_busy=request.fail_if_busy)
        return pb.DeleteEnvResponse(ref=convert.ref(env), operation=convert.operation(op))

    @mapped
    async def AddDeps(self, request: pb.DepsRequest, context: Ctx) -> pb.DepsResponse:
        outcome = await self._svc.add_deps(
            convert.env_id(request.ref),
            list(request.packages),
            request.requirements,
            deadline=deadline_of(context),
            fail_if_busy=request.fail_if_busy,
        )
        return convert.deps_response(outcome)

    @mapped
    async def UpdateDeps(self, request: pb.DepsRequest, context: Ctx) -> pb.DepsResponse:
        outcome = await self._svc.update_deps(
            convert.env_id(request.ref),
            list(request.packages),
            request.requirements,
            deadline=deadline_of(context),
            fail_if_busy=request.fail_if_busy,
        )
        return convert.deps_response(outcome)

    @mapped
    async def RemoveDeps(self, request: pb.DepsRequest, context: Ctx) -> pb.DepsResponse:
        outcome = await self._svc.remove_deps(
            convert.env_id(request.ref),
            list(request.packages),
            deadline=deadline_of(context),
            fail_if_busy=request.fail_if_busy,
        )
        return convert.deps_response(outcome)

    @mapped
    async def ListDeps(self, request: pb.ListDepsRequest, context: Ctx) -> pb.ListDepsResponse:
        return convert.list_deps(await self._svc.list_deps(convert.env_id(request.ref)))

    @mapped
    async def SyncEnv(self, request: pb.SyncEnvRequest, context: Ctx) -> pb.SyncEnvResponse:
        outcome = await self._svc.sync(
            convert.env_id(request.ref), deadline=deadline_of(context), fail_if_busy=request.fail_if_busy
        )
        return pb.SyncEnvResponse(
            environment=convert.environment(outcome.env), operation=convert.operation(outcome.operation)
        )

    @mapped
    async def ExportEnv(self, request: pb.ExportEnvRequest, context: Ctx) -> pb.ExportEnvResponse:
        view = await self._svc.export(convert.env_id(request.ref), deadline=deadline_of(context))
        return convert.export(view)

    @mapped
    async def Cleanup(self, request: pb.CleanupRequest, context: Ctx) -> pb.CleanupResponse:
        return convert.cleanup(await self._svc.cleanup(request.idle_hours, dry_run=request.dry_run))

    @mapped
    async def GetOperations(self, request: pb.GetOperationsRequest, context: Ctx) -> pb.GetOperationsResponse:
        page = await self._svc.operations(
            workflow_id=request.workflow_id,
            node_id=request.node_id,
            operation=request.operation,
            status=request.status,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return convert.operations(page)

    @mapped
    async def DeleteOperations(self, request: pb.DeleteOperationsRequest, context: Ctx) -> pb.DeleteOperationsResponse:
        deleted = await self._svc.delete_operations(
            workflow_id=request.workflow_id, node_id=request.node_id, before=request.before or None
        )
        return pb.DeleteOperationsResponse(deleted_count=deleted.count)

    @mapped
    async def WatchEvents(self, request: pb.WatchEventsRequest, context: Ctx) -> AsyncIterator[pb.Event]:
        async for record in self._svc.watch(request.after_cursor, types=list(request.types), follow=request.follow):
            yield convert.event(record)
