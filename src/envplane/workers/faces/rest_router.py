"""``/v1/pools`` over REST: each route builds the request message of its RPC from the path,
query and body (the body is the message's protobuf JSON mapping, unknown fields refused) and
calls the same handler as gRPC (``handlers.py``). Streams are NDJSON: one message per line,
and an error object with ``http_status`` as the last line if the stream fails half-way.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse

from envplane.api.rest_errors import ERROR_RESPONSES
from envplane.api.rest_params import TimeoutHeader, deadline_from, int32
from envplane.api.rest_proto import ProtoResponse, proto_request_body, proto_response, read_proto_body
from envplane.api.rest_streams import ndjson, ndjson_response_doc
from envplane.v1 import workers_pb2 as pb
from envplane.workers import handlers
from envplane.workers.service.worker_service import WorkerService

POOL = "/pools/{name}"


def create_router(service: WorkerService) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["workers"], responses=ERROR_RESPONSES, default_response_class=ProtoResponse)

    @router.post(
        "/pools",
        status_code=201,
        summary="Create a pool of workers in an environment",
        openapi_extra=proto_request_body(pb.CreatePoolRequest, "CreatePoolRequest"),
        responses={201: proto_response(pb.Pool, "the pool (with wait_ready: its workers ready)")},
    )
    async def create_pool(request: Request, timeout: TimeoutHeader = None) -> Response:
        message = await read_proto_body(request, pb.CreatePoolRequest)
        return ProtoResponse(
            await handlers.create_pool(service, message, deadline=deadline_from(timeout)), status_code=201
        )

    @router.get("/pools", summary="List pools", responses={200: proto_response(pb.ListPoolsResponse, "every pool")})
    async def list_pools() -> Response:
        return ProtoResponse(await handlers.list_pools(service, pb.ListPoolsRequest()))

    @router.get(POOL, summary="Get a pool and its workers", responses={200: proto_response(pb.Pool, "the pool")})
    async def get_pool(
        name: str,
        wait_ready_seconds: Annotated[float, Query(description="> 0: answer once its workers are ready")] = 0,
    ) -> Response:
        message = pb.GetPoolRequest(name=name, wait_ready_seconds=wait_ready_seconds)
        return ProtoResponse(await handlers.get_pool(service, message))

    @router.delete(
        POOL,
        summary="Delete a pool: drain within the grace, then kill",
        responses={200: proto_response(pb.DeletePoolResponse, "the pool as it was, and the audit record")},
    )
    async def delete_pool(
        name: str,
        grace_seconds: Annotated[float, Query(description="running calls get this long (the pool's cancel grace)")] = 0,
    ) -> Response:
        message = pb.DeletePoolRequest(name=name, grace_seconds=grace_seconds)
        return ProtoResponse(await handlers.delete_pool(service, message))

    @router.post(
        POOL + "/scale",
        summary="Change a pool's size bounds",
        openapi_extra=proto_request_body(pb.ScalePoolRequest, "min_size, max_size", omit=("name",)),
        responses={200: proto_response(pb.Pool, "the pool, resizing")},
    )
    async def scale_pool(name: str, request: Request) -> Response:
        message = await read_proto_body(request, pb.ScalePoolRequest, omit=("name",))
        message.name = name
        return ProtoResponse(await handlers.scale_pool(service, message))

    @router.post(
        POOL + "/execute",
        summary="Run a command on a worker",
        openapi_extra=proto_request_body(pb.ExecuteRequest, "the command and its arguments", omit=("pool",)),
        responses={200: proto_response(pb.ExecuteResponse, "the result, or the command's error")},
    )
    async def execute(name: str, request: Request, timeout: TimeoutHeader = None) -> Response:
        message = await read_proto_body(request, pb.ExecuteRequest, omit=("pool",))
        message.pool = name
        return ProtoResponse(await handlers.execute(service, message, deadline=deadline_from(timeout)))

    @router.post(
        POOL + "/execute:stream",
        summary="Run a generator command, streaming its chunks as NDJSON",
        response_class=StreamingResponse,
        openapi_extra=proto_request_body(pb.ExecuteRequest, "the command and its arguments", omit=("pool",)),
        responses={
            200: ndjson_response_doc(pb.ExecuteStreamResponse, "ExecuteStreamResponse (chunks, then end or error)")
        },
    )
    async def execute_stream(name: str, request: Request, timeout: TimeoutHeader = None) -> StreamingResponse:
        message = await read_proto_body(request, pb.ExecuteRequest, omit=("pool",))
        message.pool = name
        return await ndjson(handlers.execute_stream(service, message, deadline=deadline_from(timeout)))

    @router.get(
        POOL + "/logs",
        summary="The workers' stdout and stderr (NDJSON; follow for new lines)",
        response_class=StreamingResponse,
        responses={200: ndjson_response_doc(pb.LogLine, "LogLine")},
    )
    async def logs(
        name: str,
        worker: Annotated[int, Query(description="a worker slot, or -1 for all")] = -1,
        tail: Annotated[int, Query(description="the last N lines first (0 = 100)")] = 0,
        follow: bool = False,
    ) -> StreamingResponse:
        message = pb.StreamWorkerLogsRequest(
            pool=name, worker=int32("worker", worker), tail=int32("tail", tail), follow=follow
        )
        return await ndjson(handlers.stream_worker_logs(service, message))

    @router.delete(
        POOL + "/sessions/{session_id}",
        summary="End a session (its state is dropped in its worker)",
        responses={200: proto_response(pb.EndSessionResponse, "whether there was such a session")},
    )
    async def end_session(name: str, session_id: str) -> Response:
        message = pb.EndSessionRequest(pool=name, session_id=session_id)
        return ProtoResponse(await handlers.end_session(service, message))

    return router
