"""``envplane.v1.EnvironmentService`` over gRPC: each RPC is one handler call (``handlers.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TypeAlias

import grpc

from envplane.api.grpc_errors import deadline_of, mapped
from envplane.environments import handlers
from envplane.environments.service import EnvironmentService
from envplane.v1 import environments_pb2 as pb
from envplane.v1 import environments_pb2_grpc as pb_grpc

Ctx: TypeAlias = grpc.aio.ServicerContext


class EnvironmentServicer(pb_grpc.EnvironmentServiceServicer):
    def __init__(self, service: EnvironmentService) -> None:
        self._svc = service

    @mapped
    async def CreateEnv(self, request: pb.CreateEnvRequest, context: Ctx) -> pb.Environment:
        return await handlers.create_env(self._svc, request, deadline=deadline_of(context))

    @mapped
    async def CreateEnvStream(self, request: pb.CreateEnvRequest, context: Ctx) -> AsyncIterator[pb.CreateEnvProgress]:
        async for item in handlers.create_env_stream(self._svc, request, deadline=deadline_of(context)):
            yield item

    @mapped
    async def GetEnvStatus(self, request: pb.GetEnvStatusRequest, context: Ctx) -> pb.Environment:
        return await handlers.get_env_status(self._svc, request)

    @mapped
    async def ListEnvs(self, request: pb.ListEnvsRequest, context: Ctx) -> pb.ListEnvsResponse:
        return await handlers.list_envs(self._svc, request)

    @mapped
    async def DeleteEnv(self, request: pb.DeleteEnvRequest, context: Ctx) -> pb.DeleteEnvResponse:
        return await handlers.delete_env(self._svc, request, deadline=deadline_of(context))

    @mapped
    async def AddDeps(self, request: pb.DepsRequest, context: Ctx) -> pb.DepsResponse:
        return await handlers.add_deps(self._svc, request, deadline=deadline_of(context))

    @mapped
    async def UpdateDeps(self, request: pb.DepsRequest, context: Ctx) -> pb.DepsResponse:
        return await handlers.update_deps(self._svc, request, deadline=deadline_of(context))

    @mapped
    async def RemoveDeps(self, request: pb.DepsRequest, context: Ctx) -> pb.DepsResponse:
        return await handlers.remove_deps(self._svc, request, deadline=deadline_of(context))

    @mapped
    async def ListDeps(self, request: pb.ListDepsRequest, context: Ctx) -> pb.ListDepsResponse:
        return await handlers.list_deps(self._svc, request)

    @mapped
    async def SyncEnv(self, request: pb.SyncEnvRequest, context: Ctx) -> pb.SyncEnvResponse:
        return await handlers.sync_env(self._svc, request, deadline=deadline_of(context))

    @mapped
    async def ExportEnv(self, request: pb.ExportEnvRequest, context: Ctx) -> pb.ExportEnvResponse:
        return await handlers.export_env(self._svc, request, deadline=deadline_of(context))

    @mapped
    async def Cleanup(self, request: pb.CleanupRequest, context: Ctx) -> pb.CleanupResponse:
        return await handlers.cleanup(self._svc, request)
