"""``envplane.v1.WorkerService`` over gRPC: each RPC is one handler call (``handlers.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TypeAlias

import grpc

from envplane.api.grpc_errors import deadline_of, mapped
from envplane.v1 import workers_pb2 as pb
from envplane.v1 import workers_pb2_grpc as pb_grpc
from envplane.workers import handlers
from envplane.workers.service.worker_service import WorkerService

Ctx: TypeAlias = grpc.aio.ServicerContext


class WorkerServicer(pb_grpc.WorkerServiceServicer):
    def __init__(self, service: WorkerService) -> None:
        self._svc = service

    @mapped
    async def CreatePool(self, request: pb.CreatePoolRequest, context: Ctx) -> pb.Pool:
        return await handlers.create_pool(self._svc, request, deadline=deadline_of(context))

    @mapped
    async def DeletePool(self, request: pb.DeletePoolRequest, context: Ctx) -> pb.DeletePoolResponse:
        return await handlers.delete_pool(self._svc, request)

    @mapped
    async def ScalePool(self, request: pb.ScalePoolRequest, context: Ctx) -> pb.Pool:
        return await handlers.scale_pool(self._svc, request)

    @mapped
    async def ListPools(self, request: pb.ListPoolsRequest, context: Ctx) -> pb.ListPoolsResponse:
        return await handlers.list_pools(self._svc, request)

    @mapped
    async def GetPool(self, request: pb.GetPoolRequest, context: Ctx) -> pb.Pool:
        return await handlers.get_pool(self._svc, request)

    @mapped
    async def Execute(self, request: pb.ExecuteRequest, context: Ctx) -> pb.ExecuteResponse:
        return await handlers.execute(self._svc, request, deadline=deadline_of(context))

    @mapped
    async def ExecuteStream(self, request: pb.ExecuteRequest, context: Ctx) -> AsyncIterator[pb.ExecuteStreamResponse]:
        async for item in handlers.execute_stream(self._svc, request, deadline=deadline_of(context)):
            yield item

    @mapped
    async def StreamWorkerLogs(self, request: pb.StreamWorkerLogsRequest, context: Ctx) -> AsyncIterator[pb.LogLine]:
        async for line in handlers.stream_worker_logs(self._svc, request):
            yield line

    @mapped
    async def EndSession(self, request: pb.EndSessionRequest, context: Ctx) -> pb.EndSessionResponse:
        return await handlers.end_session(self._svc, request)
