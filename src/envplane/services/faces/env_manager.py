"""``env_manager.v1.EnvManagerService``: the original container manager's protocol, a thin face
over the same service layer as ``envplane.v1.ServiceManager`` (and the worker pools, for
``GetResourceAvailability`` and ``ExecuteTask``).

Status words are the original's: starting, running, healthy, unhealthy, stopped, failed
(waiting and restarting are "starting", exited is "stopped", skipped is "failed"). Where the
original was wrong, this face is right (README, "The env_manager.v1 face"):

* ``GetServicesStatus`` filters by ``service_names`` (the original ignored it);
* ``StopServices`` reports each service's real outcome, and ``success`` only when all stopped;
* ``overrides`` are applied (``<service>.image``, ``<service>.command``, ``<service>.env.VAR``,
  or ``VAR`` for every named service), and a changed service is re-created;
* ports, ``health_checks`` (probe, healthy, output, state, restarts) and ``resource_usage`` are
  filled; ``container_id`` is ``pid:<n>`` for a process service;
* ``StartServices`` follows each service until it is healthy (or ends), and says ``failed``
  with the probe's output for one that does not get healthy in time, instead of a stream that
  claims success;
* ``ExecuteTask`` runs on the worker pool named by ``workload_class``: payload -> keyword
  arguments (``payload["command"]`` names the command when the pool has several), result ->
  ``result`` (a mapping's items, or ``{"result": <JSON>}``), latency measured;
* timestamps are epoch seconds.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import grpc

from envplane.api.grpc_errors import mapped
from envplane.env_manager.v1 import env_manager_pb2 as pb
from envplane.env_manager.v1 import env_manager_pb2_grpc as pb_grpc
from envplane.errors import CommandError, EnvplaneError, InvalidArgument, NotFound, ServiceFailed
from envplane.services.service.services_service import ServicesService
from envplane.services.service.units import State, healthy_in
from envplane.services.service.views import ServiceView
from envplane.services.service.workloads import hardware

Ctx: TypeAlias = grpc.aio.ServicerContext

WORDS = {
    "waiting": "starting",
    "starting": "starting",
    "restarting": "starting",
    "running": "running",
    "stopping": "running",
    "healthy": "healthy",
    "unhealthy": "unhealthy",
    "stopped": "stopped",
    "exited": "stopped",
    "failed": "failed",
    "skipped": "failed",
}


def word(state: str) -> str:
    return WORDS.get(state, state)


def _status(view: ServiceView) -> pb.ServiceStatus:
    checks = {"state": view.state, "restarts": str(view.restarts)}
    if view.probe:
        checks.update(probe=view.probe, output=view.probe_output[:1000])
        if view.healthy is not None:
            checks["healthy"] = "true" if view.healthy else "false"
    return pb.ServiceStatus(
        name=view.name,
        status=word(view.state),
        container_id=view.container_id or (f"pid:{view.pid}" if view.pid else ""),
        ports=[int(p.split(":")[-1].split("->")[0]) for p in view.ports],
        health_checks=checks,
        started_at=int(view.started_at),
        resource_usage=pb.ResourceUsage(
            cpu_percent=view.usage.cpu_percent,
            memory_bytes=view.usage.memory_bytes,
            network_rx_bytes=view.usage.network_rx_bytes,
            network_tx_bytes=view.usage.network_tx_bytes,
        ),
    )


class EnvManagerServicer(pb_grpc.EnvManagerServiceServicer):
    def __init__(self, service: ServicesService) -> None:
        self._svc = service

    @mapped
    async def StartServices(
        self, request: pb.StartServicesRequest, context: Ctx
    ) -> AsyncIterator[pb.ServiceStatusUpdate]:
        changes = self._svc.up(
            list(request.service_names), wait=True, overrides=dict(request.overrides), serial=not request.parallel
        )
        try:
            async for change in changes:
                yield pb.ServiceStatusUpdate(
                    service_name=change.service,
                    status=word(change.state.value),
                    message=change.message + (f"\n{change.output}" if change.output else ""),
                    progress=change.progress,
                )
        except ServiceFailed as failed:
            for line in failed.detail.splitlines():
                name, _, why = line.partition(": ")
                if not line.startswith(" ") and why:
                    yield pb.ServiceStatusUpdate(service_name=name, status="failed", message=why, progress=100)

    @mapped
    async def StopServices(self, request: pb.StopServicesRequest, context: Ctx) -> pb.StopServicesResponse:
        if request.timeout_seconds < 0:
            raise InvalidArgument(f"timeout_seconds must be >= 0, got {request.timeout_seconds}")
        timeout = float(request.timeout_seconds) if request.timeout_seconds else None
        results = await self._svc.down(list(request.service_names), timeout=timeout)
        ok = all(m.startswith(("stopped", "was not running")) for m in results.values())
        return pb.StopServicesResponse(success=ok, service_results=results)

    @mapped
    async def RestartService(self, request: pb.RestartServiceRequest, context: Ctx) -> pb.RestartServiceResponse:
        if request.timeout_seconds < 0:
            raise InvalidArgument(f"timeout_seconds must be >= 0, got {request.timeout_seconds}")
        timeout = float(request.timeout_seconds) if request.timeout_seconds else None
        try:
            view = await self._svc.restart(request.service_name, timeout=timeout)
        except ServiceFailed as failed:
            return pb.RestartServiceResponse(success=False, message=str(failed))
        return pb.RestartServiceResponse(success=True, message=f"{view.name} {view.state}: {view.message}")

    @mapped
    async def GetServicesStatus(self, request: pb.GetServicesStatusRequest, context: Ctx) -> pb.ServicesStatusResponse:
        views = await self._svc.status(list(request.service_names))
        return pb.ServicesStatusResponse(services={view.name: _status(view) for view in views})

    @mapped
    async def StreamHealth(self, request: pb.StreamHealthRequest, context: Ctx) -> AsyncIterator[pb.HealthUpdate]:
        if request.interval_seconds < 0:
            raise InvalidArgument(f"interval_seconds must be >= 0, got {request.interval_seconds}")
        names = list(request.service_names)
        async for update in self._svc.watch_health(names, heartbeat=float(request.interval_seconds or 10)):
            if update.heartbeat:  # the original reported every service each interval
                for view in await self._svc.status(names, usage=False):
                    yield self._health(view.name, _healthy(view), view.state, view.message, view.probe_output)
                continue
            yield self._health(update.service, update.healthy, update.state, update.message, update.output)

    @staticmethod
    def _health(name: str, healthy: bool, state: str, message: str, output: str) -> pb.HealthUpdate:
        details = {"state": word(state)}
        if output:
            details["output"] = output[:1000]
        return pb.HealthUpdate(
            service_name=name, healthy=healthy, message=message, timestamp=int(time.time()), details=details
        )

    @mapped
    async def GetResourceAvailability(
        self, request: pb.GetResourceAvailabilityRequest, context: Ctx
    ) -> pb.ResourceAvailabilityResponse:
        machine = await hardware()
        capacity = in_use = 0
        if self._svc.workloads is not None:
            counts = self._svc.workloads.capacity(request.workload_class)
            if counts is not None:
                capacity, in_use = counts
        return pb.ResourceAvailabilityResponse(
            available=capacity > in_use,
            capacity=capacity,
            in_use=in_use,
            hardware=pb.HardwareInfo(
                cpu_cores=machine.cpu_cores,
                memory_bytes=machine.memory_bytes,
                gpus=[
                    pb.GPU(
                        index=g.index,
                        name=g.name,
                        memory_bytes=g.memory_bytes,
                        utilization_percent=g.utilization_percent,
                    )
                    for g in machine.gpus
                ],
            ),
        )

    @mapped
    async def ExecuteTask(self, request: pb.ExecuteTaskRequest, context: Ctx) -> pb.ExecuteTaskResponse:
        workloads = self._svc.workloads
        if workloads is None:
            raise NotFound("this daemon has no worker pools to run tasks on")
        if not request.workload_class:
            raise InvalidArgument("workload_class must name the worker pool to run the task on")
        if request.timeout_seconds < 0:
            raise InvalidArgument(f"timeout_seconds must be >= 0, got {request.timeout_seconds}")
        args = dict(request.payload)
        commands = list(workloads.commands(request.workload_class))
        command = args.pop("command", "") or (commands[0] if len(commands) == 1 else "")
        if not command:
            raise InvalidArgument(
                f"pool {request.workload_class!r} has several commands ({', '.join(commands)}): "
                'name one in payload["command"]'
            )
        started = time.perf_counter()
        try:
            value = await workloads.execute(
                request.workload_class, command, args, timeout=float(request.timeout_seconds) or None
            )
        except CommandError as failed:
            latency = (time.perf_counter() - started) * 1000
            return pb.ExecuteTaskResponse(success=False, error=failed.message, latency_ms=latency)
        except EnvplaneError as failed:
            if isinstance(failed, NotFound | InvalidArgument):
                raise
            latency = (time.perf_counter() - started) * 1000
            return pb.ExecuteTaskResponse(success=False, error=str(failed), latency_ms=latency)
        latency = (time.perf_counter() - started) * 1000
        return pb.ExecuteTaskResponse(success=True, result=_result(value), latency_ms=latency)

    @mapped
    async def PullImages(self, request: pb.PullImagesRequest, context: Ctx) -> AsyncIterator[pb.ImagePullProgress]:
        async for image, step in self._svc.pull(list(request.image_names)):
            status = f"{step['status']} {step['layer']}".strip() if not step["error"] else f"error: {step['error']}"
            yield pb.ImagePullProgress(
                image_name=image,
                status=status,
                current=step["current"],
                total=step["total"],
                progress_percent=step["percent"],
            )

    @mapped
    async def StreamLogs(self, request: pb.StreamLogsRequest, context: Ctx) -> AsyncIterator[pb.LogEntry]:
        if request.tail < 0 or request.since_timestamp < 0:
            raise InvalidArgument("tail and since_timestamp must be >= 0")
        lines = self._svc.logs(
            request.service_name, tail=request.tail, since=float(request.since_timestamp), follow=request.follow
        )
        instance = self._svc.instance(request.service_name)
        where = (instance.container_id or f"pid:{instance.pid}") if instance else ""
        async for line in lines:
            yield pb.LogEntry(
                service_name=request.service_name,
                container_id=where,
                stream=line.stream,
                message=line.text,
                timestamp=int(line.timestamp),
            )


def _healthy(view: ServiceView) -> bool:
    return healthy_in(State(view.state), has_probe=bool(view.probe))


def _result(value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        return {str(k): v if isinstance(v, str) else json.dumps(v, default=str) for k, v in value.items()}
    return {"result": value if isinstance(value, str) else json.dumps(value, default=str)}
