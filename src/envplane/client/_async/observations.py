"""``client.observations``: every ``envplane.v1.ObservationService`` RPC as a method.

``observe`` sends one task observation and returns the action; ``observe_stream`` sends many
(an iterable, or an async iterable on the asyncio client) and yields one reply each, in order —
the way to send thousands a second. A refused observation of a stream is a reply with
``error`` set; of ``observe``, :class:`~envplane.errors.InvalidArgument`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

from envplane.client._async.transport import AsyncTransport
from envplane.v1 import observations_pb2 as pb
from envplane.v1 import observations_pb2_grpc as pb_grpc


def observation(**fields: Any) -> pb.TaskObservation:
    """A ``TaskObservation`` from keyword fields (``pipeline``, ``process``, ``status``,
    ``peak_rss_bytes``...); an unknown field is a ``ValueError`` naming it."""
    return pb.TaskObservation(**fields)


class AsyncObservations:
    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport
        self._stub = pb_grpc.ObservationServiceStub(transport.channel)

    async def observe(self, message: pb.TaskObservation | None = None, **fields: Any) -> pb.ObserveReply:
        """One observation (a message, or its fields as keywords): stored, answered."""
        request = message if message is not None else observation(**fields)
        result: pb.ObserveReply = await self._t.call(self._stub.Observe, request, None)
        return result

    def observe_stream(
        self, observations: Iterable[pb.TaskObservation], *, timeout: float | None = None
    ) -> AsyncIterator[pb.ObserveReply]:
        """Many observations over one stream; one reply each, in order."""
        return self._t.stream(self._stub.ObserveStream, observations, timeout)

    async def query(
        self,
        *,
        pipeline: str = "",
        process: str = "",
        status: str = "",
        run: str = "",
        page_size: int = 0,
        page_token: str = "",
    ) -> pb.ListObservationsResponse:
        """A page of stored observations with their actions, oldest first."""
        request = pb.ListObservationsRequest(
            pipeline=pipeline, process=process, status=status, run=run, page_size=page_size, page_token=page_token
        )
        result: pb.ListObservationsResponse = await self._t.call(self._stub.ListObservations, request, None)
        return result

    async def stats(self, pipeline: str = "", process: str = "") -> list[pb.ProcessStats]:
        request = pb.ProcessStatsRequest(pipeline=pipeline, process=process)
        result: pb.ProcessStatsResponse = await self._t.call(self._stub.GetProcessStats, request, None)
        return list(result.processes)

    async def recommendations(self, pipeline: str = "") -> pb.RecommendationsResponse:
        request = pb.RecommendationsRequest(pipeline=pipeline)
        result: pb.RecommendationsResponse = await self._t.call(self._stub.GetRecommendations, request, None)
        return result

    async def export(
        self,
        pipeline: str = "",
        *,
        format: str = "nextflow",
        max_retries: int = 0,
        max_memory_bytes: int = 0,
        max_cpus: float = 0.0,
        max_time_ms: int = 0,
    ) -> str:
        """The sizes as a Nextflow config (``nextflow``) or a JSON profile (``json``)."""
        request = pb.ExportConfigRequest(
            pipeline=pipeline,
            format=format,
            max_retries=max_retries,
            max_memory_bytes=max_memory_bytes,
            max_cpus=max_cpus,
            max_time_ms=max_time_ms,
        )
        result: pb.ExportConfigResponse = await self._t.call(self._stub.ExportConfig, request, None)
        return result.content

    async def report(self, pipeline: str = "") -> str:
        """The report: one self-contained HTML page."""
        result: pb.ReportResponse = await self._t.call(self._stub.GetReport, pb.ReportRequest(pipeline=pipeline), None)
        return result.html

    async def pipelines(self) -> list[pb.Pipeline]:
        result: pb.ListPipelinesResponse = await self._t.call(self._stub.ListPipelines, pb.ListPipelinesRequest(), None)
        return list(result.pipelines)

    async def set_pipeline(self, name: str, *, policy: str = "", memory_cap: int | None = None) -> pb.Pipeline:
        request = pb.SetPipelineRequest(
            name=name, policy=policy, has_memory_cap=memory_cap is not None, memory_cap_bytes=memory_cap or 0
        )
        result: pb.Pipeline = await self._t.call(self._stub.SetPipeline, request, None)
        return result

    async def forget(self, pipeline: str, process: str = "") -> pb.ForgetObservationsResponse:
        """Delete a pipeline's observations (or one process's) and their evidence."""
        request = pb.ForgetObservationsRequest(pipeline=pipeline, process=process)
        result: pb.ForgetObservationsResponse = await self._t.call(self._stub.ForgetObservations, request, None)
        return result
