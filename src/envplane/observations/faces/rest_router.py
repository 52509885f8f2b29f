"""``/v1/observations`` and ``/v1/pipelines`` over REST: each route builds the request message
of its RPC from the query and body and calls the same handler as gRPC (``handlers.py``).

The stream's REST mirror is ``POST /v1/observations:batch`` (one transaction, replies in
order). ``POST /v1/observations:weblog`` takes Nextflow's ``-with-weblog`` events as Nextflow
posts them (``nextflow run ... -with-weblog http://127.0.0.1:8000/v1/observations:weblog``).
Pipeline names may hold slashes (``nf-core/rnaseq``), so they are query parameters, except in
``PATCH /v1/pipelines/{name}`` where the name is the rest of the path.
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse, PlainTextResponse

from envplane.api.rest_errors import ERROR_RESPONSES
from envplane.api.rest_params import int32, int64
from envplane.api.rest_proto import ProtoResponse, proto_request_body, proto_response, read_proto_body
from envplane.errors import InvalidArgument
from envplane.observations import handlers, messages
from envplane.observations.service.observation_service import ObservationService
from envplane.observations.service.weblog import Runs, parse
from envplane.v1 import observations_pb2 as pb

PipelineQuery = Annotated[str, Query(description="the pipeline; empty: every pipeline")]
MAX_BATCH = 10_000


def create_router(service: ObservationService) -> APIRouter:
    router = APIRouter(
        prefix="/v1", tags=["observations"], responses=ERROR_RESPONSES, default_response_class=ProtoResponse
    )
    runs = Runs()

    @router.post(
        "/observations",
        summary="One task observation: stored, answered with an action",
        openapi_extra=proto_request_body(pb.TaskObservation, "the observation (process and status required)"),
        responses={200: proto_response(pb.ObserveReply, "the action (the stored one for a repeated event_id)")},
    )
    async def observe(request: Request) -> Response:
        message = await read_proto_body(request, pb.TaskObservation)
        return ProtoResponse(await handlers.observe(service, message, source="rest"))

    @router.post(
        "/observations:batch",
        summary="Many observations in one transaction (the stream's mirror); a bad one is a reply with error",
        openapi_extra=proto_request_body(pb.ObserveBatchRequest, f"observations, at most {MAX_BATCH}"),
        responses={200: proto_response(pb.ObserveBatchResponse, "one reply each, in order")},
    )
    async def batch(request: Request) -> Response:
        message = await read_proto_body(request, pb.ObserveBatchRequest)
        if len(message.observations) > MAX_BATCH:
            raise InvalidArgument(f"a batch holds at most {MAX_BATCH} observations, got {len(message.observations)}")
        observations = [messages.observation(m, source="rest") for m in message.observations]
        outcomes = await service.observe_many(observations)
        return ProtoResponse(pb.ObserveBatchResponse(replies=[handlers.reply(o) for o in outcomes]))

    @router.post(
        "/observations:weblog",
        summary="A Nextflow -with-weblog event, as Nextflow posts it; a task's end becomes an observation",
        openapi_extra={
            "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}
        },
        responses={200: proto_response(pb.WeblogReply, "what the event became")},
    )
    async def weblog(
        request: Request,
        pipeline: Annotated[
            str, Query(description="the pipeline its tasks belong to (default: the run's project name)")
        ] = "",
    ) -> Response:
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError as exc:
            raise InvalidArgument(f"the body is not JSON: {exc}") from None
        parsed = parse(body, runs, pipeline)
        if parsed.observation is None:
            return ProtoResponse(pb.WeblogReply(event=parsed.event, observed=False))
        outcome = await service.observe(parsed.observation)  # a bad one: InvalidArgument naming it
        return ProtoResponse(pb.WeblogReply(event=parsed.event, observed=True, reply=handlers.reply(outcome)))

    @router.get(
        "/observations",
        summary="Stored observations and their actions, oldest first, with filters",
        responses={200: proto_response(pb.ListObservationsResponse, "a page")},
    )
    async def list_(
        pipeline: PipelineQuery = "",
        process: str = "",
        status: str = "",
        run: str = "",
        page_size: Annotated[int, Query(description="0: the daemon's default")] = 0,
        page_token: str = "",
    ) -> Response:
        message = pb.ListObservationsRequest(
            pipeline=pipeline, process=process, status=status, run=run,
            page_size=int32("page_size", page_size), page_token=page_token,
        )  # fmt: skip
        return ProtoResponse(await handlers.list_observations(service, message))

    @router.get(
        "/observations:stats",
        summary="Per process: counts, peaks, waste at the requests, the recommended memory",
        responses={200: proto_response(pb.ProcessStatsResponse, "one entry per (pipeline, process)")},
    )
    async def stats(pipeline: PipelineQuery = "", process: str = "") -> Response:
        message = pb.ProcessStatsRequest(pipeline=pipeline, process=process)
        return ProtoResponse(await handlers.get_process_stats(service, message))

    @router.get(
        "/observations:recommendations",
        summary="Per process of a pipeline: the first attempt's memory and each retry's",
        responses={200: proto_response(pb.RecommendationsResponse, "the recommendations")},
    )
    async def recommendations(pipeline: Annotated[str, Query(description="empty: default")] = "") -> Response:
        return ProtoResponse(await handlers.get_recommendations(service, pb.RecommendationsRequest(pipeline=pipeline)))

    @router.get(
        "/observations:config",
        summary="The sizes as a Nextflow config (text) or a JSON profile",
        response_class=PlainTextResponse,
        responses={200: {"description": "the config", "content": {"text/plain": {}, "application/json": {}}}},
    )
    async def config(
        pipeline: Annotated[str, Query(description="empty: default")] = "",
        format: Annotated[str, Query(description="nextflow | json")] = "nextflow",
        max_retries: Annotated[int, Query(description="0: 3")] = 0,
        max_memory_bytes: Annotated[int, Query(description="resourceLimits.memory; 0: the pipeline's cap")] = 0,
        max_cpus: float = 0,
        max_time_ms: int = 0,
    ) -> Response:
        message = pb.ExportConfigRequest(
            pipeline=pipeline, format=format, max_retries=int32("max_retries", max_retries),
            max_memory_bytes=int64("max_memory_bytes", max_memory_bytes), max_cpus=max_cpus,
            max_time_ms=int64("max_time_ms", max_time_ms),
        )  # fmt: skip
        reply = await handlers.export_config(service, message)
        media = "application/json" if reply.format == "json" else "text/plain; charset=utf-8"
        return Response(reply.content, media_type=media)

    @router.get(
        "/observations:report",
        summary="The report: one self-contained HTML page",
        response_class=HTMLResponse,
        responses={200: {"description": "the page", "content": {"text/html": {}}}},
    )
    async def report(pipeline: PipelineQuery = "") -> Response:
        reply = await handlers.get_report(service, pb.ReportRequest(pipeline=pipeline))
        return HTMLResponse(reply.html)

    @router.delete(
        "/observations",
        summary="Forget a pipeline's observations (or one process's) and their evidence",
        responses={200: proto_response(pb.ForgetObservationsResponse, "how many were deleted")},
    )
    async def forget(
        pipeline: Annotated[str, Query(description="required")] = "",
        process: Annotated[str, Query(description="empty: every process of the pipeline")] = "",
    ) -> Response:
        message = pb.ForgetObservationsRequest(pipeline=pipeline, process=process)
        return ProtoResponse(await handlers.forget_observations(service, message))

    @router.get(
        "/pipelines",
        summary="Every pipeline seen or set: its policy, cap and counts",
        responses={200: proto_response(pb.ListPipelinesResponse, "the pipelines")},
    )
    async def pipelines() -> Response:
        return ProtoResponse(await handlers.list_pipelines(service, pb.ListPipelinesRequest()))

    @router.patch(
        "/pipelines/{name:path}",
        summary="Choose a pipeline's policy or memory cap",
        openapi_extra=proto_request_body(
            pb.SetPipelineRequest, "policy, has_memory_cap, memory_cap_bytes", omit=("name",)
        ),
        responses={200: proto_response(pb.Pipeline, "the pipeline")},
    )
    async def set_pipeline(name: str, request: Request) -> Response:
        message = await read_proto_body(request, pb.SetPipelineRequest, omit=("name",))
        message.name = name
        return ProtoResponse(await handlers.set_pipeline(service, message))

    return router
