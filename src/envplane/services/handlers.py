"""One function per ``envplane.v1.ServiceManager`` RPC: request message -> service call -> reply.
Both faces call these, so gRPC and REST take the same fields and give the same answers."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator

from envplane.errors import InvalidArgument
from envplane.services import messages
from envplane.services.service.services_service import ServicesService
from envplane.v1 import services_pb2 as pb


def _seconds(name: str, value: float) -> float:
    if not math.isfinite(value) or value < 0:
        raise InvalidArgument(f"{name} must be a number of seconds >= 0, got {value}")
    return value


async def start_services(
    service: ServicesService, request: pb.StartServicesRequest
) -> AsyncIterator[pb.ServiceProgress]:
    timeout = _seconds("timeout_seconds", request.timeout_seconds)
    async for change in service.up(list(request.names), wait=request.wait, timeout=timeout):
        yield messages.progress(change)


async def stop_services(service: ServicesService, request: pb.StopServicesRequest) -> pb.StopServicesResponse:
    timeout = _seconds("timeout_seconds", request.timeout_seconds) if request.has_timeout else None
    results = await service.down(list(request.names), timeout=timeout)
    return pb.StopServicesResponse(
        results=[
            pb.ServiceResult(name=name, ok=message.startswith(("stopped", "was not running")), message=message)
            for name, message in results.items()
        ]
    )


async def restart_service(service: ServicesService, request: pb.RestartServiceRequest) -> pb.Service:
    timeout = _seconds("timeout_seconds", request.timeout_seconds) if request.has_timeout else None
    wait = _seconds("wait_timeout_seconds", request.wait_timeout_seconds)
    return messages.service(await service.restart(request.name, timeout=timeout, wait_timeout=wait))


async def get_services_status(
    service: ServicesService, request: pb.GetServicesStatusRequest
) -> pb.ServicesStatusResponse:
    views = await service.status(list(request.names))
    return pb.ServicesStatusResponse(services=[messages.service(view) for view in views])


async def stream_health(service: ServicesService, request: pb.StreamHealthRequest) -> AsyncIterator[pb.HealthUpdate]:
    heartbeat = _seconds("heartbeat_seconds", request.heartbeat_seconds)
    async for update in service.watch_health(list(request.names), heartbeat=heartbeat, once=request.once):
        yield messages.health(update)


async def pull_images(service: ServicesService, request: pb.PullImagesRequest) -> AsyncIterator[pb.PullProgress]:
    async for image, step in service.pull(list(request.images)):
        yield pb.PullProgress(
            image=image,
            layer=step["layer"],
            status=step["status"],
            current=step["current"],
            total=step["total"],
            percent=step["percent"],
            error=step["error"],
        )


async def stream_logs(service: ServicesService, request: pb.StreamLogsRequest) -> AsyncIterator[pb.ServiceLogLine]:
    if request.tail < 0:
        raise InvalidArgument(f"tail must be >= 0, got {request.tail}")
    since = _seconds("since", request.since)
    lines = service.logs(request.name, tail=request.tail, since=since, follow=request.follow)
    instance = service.instance(request.name)
    container = instance.container_id if instance else ""
    async for line in lines:
        yield messages.log_line(request.name, container, line)
