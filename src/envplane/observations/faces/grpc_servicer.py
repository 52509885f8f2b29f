"""``envplane.v1.ObservationService`` over gRPC: each RPC is one handler call (``handlers.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TypeAlias

import grpc

from envplane.api.grpc_errors import mapped
from envplane.observations import handlers
from envplane.observations.service.observation_service import ObservationService
from envplane.v1 import observations_pb2 as pb
from envplane.v1 import observations_pb2_grpc as pb_grpc

Ctx: TypeAlias = grpc.aio.ServicerContext


class ObservationServicer(pb_grpc.ObservationServiceServicer):
    def __init__(self, service: ObservationService) -> None:
        self._svc = service

    @mapped
    async def Observe(self, request: pb.TaskObservation, context: Ctx) -> pb.ObserveReply:
        return await handlers.observe(self._svc, request)

    @mapped
    async def ObserveStream(
        self, request_iterator: AsyncIterator[pb.TaskObservation], context: Ctx
    ) -> AsyncIterator[pb.ObserveReply]:
        async for item in handlers.observe_stream(self._svc, request_iterator):
            yield item

    @mapped
    async def ListObservations(self, request: pb.ListObservationsRequest, context: Ctx) -> pb.ListObservationsResponse:
        return await handlers.list_observations(self._svc, request)

    @mapped
    async def GetProcessStats(self, request: pb.ProcessStatsRequest, context: Ctx) -> pb.ProcessStatsResponse:
        return await handlers.get_process_stats(self._svc, request)

    @mapped
    async def GetRecommendations(self, request: pb.RecommendationsRequest, context: Ctx) -> pb.RecommendationsResponse:
        return await handlers.get_recommendations(self._svc, request)

    @mapped
    async def ExportConfig(self, request: pb.ExportConfigRequest, context: Ctx) -> pb.ExportConfigResponse:
        return await handlers.export_config(self._svc, request)

    @mapped
    async def GetReport(self, request: pb.ReportRequest, context: Ctx) -> pb.ReportResponse:
        return await handlers.get_report(self._svc, request)

    @mapped
    async def ListPipelines(self, request: pb.ListPipelinesRequest, context: Ctx) -> pb.ListPipelinesResponse:
        return await handlers.list_pipelines(self._svc, request)

    @mapped
    async def SetPipeline(self, request: pb.SetPipelineRequest, context: Ctx) -> pb.Pipeline:
        return await handlers.set_pipeline(self._svc, request)

    @mapped
    async def ForgetObservations(
        self, request: pb.ForgetObservationsRequest, context: Ctx
    ) -> pb.ForgetObservationsResponse:
        return await handlers.forget_observations(self._svc, request)
