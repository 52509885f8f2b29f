"""``/v1/services`` over REST: each route builds the request message of its RPC from the path,
query and body and calls the same handler as gRPC (``handlers.py``). Streams are NDJSON (one
message per line, an error object with ``http_status`` last if the stream fails half-way), or
server-sent events for ``Accept: text/event-stream``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse

from envplane.api.rest_errors import ERROR_RESPONSES
from envplane.api.rest_params import int32
from envplane.api.rest_proto import ProtoResponse, proto_request_body, proto_response, read_proto_body
from envplane.api.rest_streams import ndjson, ndjson_response_doc, wants_sse
from envplane.services import handlers
from envplane.services.service.services_service import ServicesService
from envplane.v1 import services_pb2 as pb

SERVICE = "/services/{name}"
Names = Annotated[list[str], Query(description="service names (repeat the parameter); none = every service")]
Accept = Annotated[str | None, Header(include_in_schema=False)]


def create_router(service: ServicesService) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["services"], responses=ERROR_RESPONSES, default_response_class=ProtoResponse)

    @router.get(
        "/services",
        summary="Every service (or those named): state, health, pid / container, ports, usage",
        responses={200: proto_response(pb.ServicesStatusResponse, "the services")},
    )
    async def status(name: Names = []) -> Response:  # noqa: B006 (FastAPI reads the default, never mutates it)
        message = pb.GetServicesStatusRequest(names=name)
        return ProtoResponse(await handlers.get_services_status(service, message))

    @router.get(SERVICE, summary="One service", responses={200: proto_response(pb.Service, "the service")})
    async def get(name: str) -> Response:
        reply = await handlers.get_services_status(service, pb.GetServicesStatusRequest(names=[name]))
        return ProtoResponse(reply.services[0])

    @router.post(
        "/services:start",
        summary="Start services and their dependencies, streaming each change",
        response_class=StreamingResponse,
        openapi_extra=proto_request_body(pb.StartServicesRequest, "names, wait, timeout_seconds"),
        responses={200: ndjson_response_doc(pb.ServiceProgress, "ServiceProgress", sse=True)},
    )
    async def start(request: Request, accept: Accept = None) -> StreamingResponse:
        message = await read_proto_body(request, pb.StartServicesRequest)
        return await ndjson(handlers.start_services(service, message), sse=wants_sse(accept))

    @router.post(
        "/services:stop",
        summary="Stop services (dependents first), or all of them",
        openapi_extra=proto_request_body(pb.StopServicesRequest, "names (none = all), timeout_seconds"),
        responses={200: proto_response(pb.StopServicesResponse, "what happened to each, in order")},
    )
    async def stop(request: Request) -> Response:
        message = await read_proto_body(request, pb.StopServicesRequest)
        return ProtoResponse(await handlers.stop_services(service, message))

    @router.post(
        SERVICE + ":restart",
        summary="Stop a service, start it again and wait until it is healthy",
        openapi_extra=proto_request_body(pb.RestartServiceRequest, "timeouts", omit=("name",)),
        responses={200: proto_response(pb.Service, "the service, restarted")},
    )
    async def restart(name: str, request: Request) -> Response:
        message = await read_proto_body(request, pb.RestartServiceRequest, omit=("name",))
        message.name = name
        return ProtoResponse(await handlers.restart_service(service, message))

    @router.get(
        "/services:health",
        summary="Health now, then each change and heartbeats (a stream)",
        response_class=StreamingResponse,
        responses={200: ndjson_response_doc(pb.HealthUpdate, "HealthUpdate", sse=True)},
    )
    async def health(
        name: Names = [],  # noqa: B006
        heartbeat_seconds: Annotated[float, Query(description="a heartbeat after this much quiet (0 = 10 s)")] = 0,
        once: Annotated[bool, Query(description="each service's health now, then end")] = False,
        accept: Accept = None,
    ) -> StreamingResponse:
        message = pb.StreamHealthRequest(names=name, heartbeat_seconds=heartbeat_seconds, once=once)
        return await ndjson(handlers.stream_health(service, message), sse=wants_sse(accept))

    @router.get(
        SERVICE + "/logs",
        summary="A service's stdout and stderr, each line with its own time (follow for new lines)",
        response_class=StreamingResponse,
        responses={200: ndjson_response_doc(pb.ServiceLogLine, "ServiceLogLine", sse=True)},
    )
    async def logs(
        name: str,
        tail: Annotated[int, Query(description="the last N lines (0 = all)")] = 0,
        since: Annotated[float, Query(description="epoch seconds: lines written at or after")] = 0,
        follow: bool = False,
        accept: Accept = None,
    ) -> StreamingResponse:
        message = pb.StreamLogsRequest(name=name, tail=int32("tail", tail), since=since, follow=follow)
        return await ndjson(handlers.stream_logs(service, message), sse=wants_sse(accept))

    @router.post(
        "/images:pull",
        summary="Pull images, streaming the engine's progress",
        response_class=StreamingResponse,
        openapi_extra=proto_request_body(pb.PullImagesRequest, "images (none = every Docker service's)"),
        responses={200: ndjson_response_doc(pb.PullProgress, "PullProgress", sse=True)},
    )
    async def pull(request: Request, accept: Accept = None) -> StreamingResponse:
        message = await read_proto_body(request, pb.PullImagesRequest)
        return await ndjson(handlers.pull_images(service, message), sse=wants_sse(accept))

    return router
