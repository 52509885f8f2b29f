"""``envplane.v1.ServiceManager`` over gRPC: each RPC is one handler call (``handlers.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TypeAlias

import grpc

from envplane.api.grpc_errors import mapped
from envplane.services import handlers
from envplane.services.service.services_service import ServicesService
from envplane.v1 import services_pb2 as pb
from envplane.v1 import services_pb2_grpc as pb_grpc

Ctx: TypeAlias = grpc.aio.ServicerContext


class ServiceManagerServicer(pb_grpc.ServiceManagerServicer):
    def __init__(self, service: ServicesService) -> None:
        self._svc = service

    @mapped
    async def StartServices(self, request: pb.StartServicesRequest, context: Ctx) -> AsyncIterator[pb.ServiceProgress]:
        async for item in handlers.start_services(self._svc, request):
            yield item

    @mapped
    async def StopServices(self, request: pb.StopServicesRequest, context: Ctx) -> pb.StopServicesResponse:
        return await handlers.stop_services(self._svc, request)

    @mapped
    async def RestartService(self, request: pb.RestartServiceRequest, context: Ctx) -> pb.Service:
        return await handlers.restart_service(self._svc, request)

    @mapped
    async def GetServicesStatus(self, request: pb.GetServicesStatusRequest, context: Ctx) -> pb.ServicesStatusResponse:
        return await handlers.get_services_status(self._svc, request)

    @mapped
    async def StreamHealth(self, request: pb.StreamHealthRequest, context: Ctx) -> AsyncIterator[pb.HealthUpdate]:
        async for item in handlers.stream_health(self._svc, request):
            yield item

    @mapped
    async def PullImages(self, request: pb.PullImagesRequest, context: Ctx) -> AsyncIterator[pb.PullProgress]:
        async for item in handlers.pull_images(self._svc, request):
            yield item

    @mapped
    async def StreamLogs(self, request: pb.StreamLogsRequest, context: Ctx) -> AsyncIterator[pb.ServiceLogLine]:
        async for item in handlers.stream_logs(self._svc, request):
            yield item
