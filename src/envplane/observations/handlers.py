"""One function per ``envplane.v1.ObservationService`` RPC: request message -> service call ->
reply. Both faces call these, so gRPC and REST take the same fields and give the same answers."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator

from envplane.errors import InvalidArgument
from envplane.observations import messages
from envplane.observations.service import exports, queries
from envplane.observations.service.observation_service import ObservationService, Outcome
from envplane.v1 import observations_pb2 as pb

BATCH = 512  # observations of a stream decided and stored in one transaction, at most


def reply(outcome: Outcome) -> pb.ObserveReply:
    return pb.ObserveReply(
        observation_id=outcome.observation_id,
        action=messages.action(outcome.decision, outcome.action_id) if not outcome.error else None,
        duplicate=outcome.duplicate,
        event_id=outcome.event_id,
        error=outcome.error,
    )


async def observe(service: ObservationService, request: pb.TaskObservation, *, source: str = "") -> pb.ObserveReply:
    return reply(await service.observe(messages.observation(request, source=source)))


async def observe_stream(
    service: ObservationService, requests: AsyncIterator[pb.TaskObservation], *, source: str = ""
) -> AsyncIterator[pb.ObserveReply]:
    """Replies in order. What arrived while the last batch was being stored is the next batch
    (one transaction), so the rate follows the sender without holding any observation back; the
    next batch is decided and stored while the one before it is being answered."""
    # Bounded: a sender faster than the daemon is held back by gRPC's flow control, not by memory.
    queue: asyncio.Queue[pb.TaskObservation | None] = asyncio.Queue(maxsize=4 * BATCH)

    async def read() -> None:
        try:
            async for request in requests:
                await queue.put(request)
        finally:
            await queue.put(None)

    reader = asyncio.ensure_future(read())
    in_flight: collections.deque[asyncio.Task[list[Outcome]]] = collections.deque()
    try:
        ended = False
        while not ended or in_flight:
            if not ended:
                batch = [await queue.get()] if not in_flight or not queue.empty() else []
                while batch and len(batch) < BATCH and not queue.empty():
                    batch.append(queue.get_nowait())
                if batch and batch[-1] is None:
                    ended = True
                    batch.pop()
                if batch:  # decided now, in order; stored while the batch before it is answered
                    observations = [messages.observation(m, source=source) for m in batch if m is not None]
                    in_flight.append(asyncio.ensure_future(service.observe_many(observations)))
                    if len(in_flight) < 2 and not ended:
                        continue
            if in_flight:
                for outcome in await in_flight.popleft():
                    yield reply(outcome)
        await reader  # a broken request stream is the stream's error
    finally:
        reader.cancel()
        for task in in_flight:
            task.cancel()


async def list_observations(
    service: ObservationService, request: pb.ListObservationsRequest
) -> pb.ListObservationsResponse:
    where = queries.Filter(request.pipeline, request.process, request.status, request.run)
    page = await service.list_observations(where, request.page_size, request.page_token)
    return pb.ListObservationsResponse(
        observations=[messages.stored(row) for row in page.items], next_page_token=page.next_page_token
    )


async def get_process_stats(service: ObservationService, request: pb.ProcessStatsRequest) -> pb.ProcessStatsResponse:
    if request.process and not request.pipeline:
        raise InvalidArgument("process needs its pipeline")
    found = await service.stats(request.pipeline, request.process)
    return pb.ProcessStatsResponse(
        processes=[
            pb.ProcessStats(
                pipeline=f.counts.pipeline,
                process=f.counts.process,
                observations=f.counts.observations,
                completed=f.counts.completed,
                failed=f.counts.failed,
                memory_failures=f.counts.memory_failures,
                peak_rss_p50_bytes=f.peak_p50,
                peak_rss_p95_bytes=f.peak_p95,
                peak_rss_max_bytes=f.peak_max,
                requested_memory_max_bytes=f.counts.requested_max,
                realtime_hours=f.counts.realtime_ms / 3_600_000,
                wasted_gb_hours=f.counts.wasted,
                recommended_memory_bytes=f.recommended,
            )
            for f in found
        ]
    )


async def get_recommendations(
    service: ObservationService, request: pb.RecommendationsRequest
) -> pb.RecommendationsResponse:
    profile = await service.recommendations(request.pipeline)
    return pb.RecommendationsResponse(
        pipeline=profile.pipeline,
        policy=profile.policy,
        cap_bytes=profile.limits.memory_bytes,
        recommendations=[
            pb.Recommendation(
                process=r.process,
                memory_bytes=r.memory_bytes,
                retry_memory_bytes=r.retry_memory_bytes,
                tasks_seen=r.tasks_seen,
                max_peak_rss_bytes=r.max_peak_rss_bytes,
                reason=r.reason,
            )
            for r in profile.recommendations
        ],
    )


async def export_config(service: ObservationService, request: pb.ExportConfigRequest) -> pb.ExportConfigResponse:
    format_ = request.format or "nextflow"
    limits = exports.Limits(request.max_retries or 3, request.max_memory_bytes, request.max_cpus, request.max_time_ms)
    content = await service.export(request.pipeline, format_, limits)
    return pb.ExportConfigResponse(format=format_, content=content)


async def get_report(service: ObservationService, request: pb.ReportRequest) -> pb.ReportResponse:
    return pb.ReportResponse(html=await service.report(request.pipeline))


def pipeline(settings: queries.PipelineSettings, counts: list[queries.Counts]) -> pb.Pipeline:
    return pb.Pipeline(
        name=settings.name,
        policy=settings.policy,
        memory_cap_bytes=settings.memory_cap,
        observations=sum(c.observations for c in counts),
        processes=len(counts),
        last_seen=max((c.last_seen for c in counts), default=0.0),
    )


async def list_pipelines(service: ObservationService, request: pb.ListPipelinesRequest) -> pb.ListPipelinesResponse:
    return pb.ListPipelinesResponse(pipelines=[pipeline(s, c) for s, c in await service.pipelines()])


async def set_pipeline(service: ObservationService, request: pb.SetPipelineRequest) -> pb.Pipeline:
    cap = request.memory_cap_bytes if request.has_memory_cap else None
    settings = await service.set_pipeline(request.name, request.policy or None, cap)
    for found, counts in await service.pipelines():
        if found.name == settings.name:
            return pipeline(found, counts)
    return pipeline(settings, [])


async def forget_observations(
    service: ObservationService, request: pb.ForgetObservationsRequest
) -> pb.ForgetObservationsResponse:
    deleted, processes = await service.forget(request.pipeline, request.process)
    return pb.ForgetObservationsResponse(deleted=deleted, processes=processes)
