# Generated from client/_async/services.py by scripts/unasync.py (make client): DO NOT EDIT.
"""``client.services``: every ``envplane.v1.ServiceManager`` RPC as a method.

``up`` yields each service's progress as it starts (with ``wait=True`` it goes on until all are
healthy, and raises :class:`~envplane.errors.ServiceFailed` with the failing probe's output if
one is not in time); ``down`` stops dependents first and says what happened to each.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from envplane.client._sync.transport import Transport
from envplane.v1 import services_pb2 as pb
from envplane.v1 import services_pb2_grpc as pb_grpc


class Services:
    def __init__(self, transport: Transport) -> None:
        self._t = transport
        self._stub = pb_grpc.ServiceManagerStub(transport.channel)

    def up(self, names: Sequence[str], *, wait: bool = False, timeout: float = 0.0) -> Iterator[pb.ServiceProgress]:
        """Start ``names`` and their dependencies, streaming each change."""
        request = pb.StartServicesRequest(names=list(names), wait=wait, timeout_seconds=timeout)
        return self._t.stream(self._stub.StartServices, request, (timeout or 120.0) + 30.0)

    def down(self, names: Sequence[str] = (), *, timeout: float | None = None) -> list[pb.ServiceResult]:
        """Stop ``names`` (what depends on them first), or every service."""
        request = pb.StopServicesRequest(
            names=list(names), has_timeout=timeout is not None, timeout_seconds=timeout or 0.0
        )
        result: pb.StopServicesResponse = self._t.call(self._stub.StopServices, request, None)
        return list(result.results)

    def restart(self, name: str, *, timeout: float | None = None, wait_timeout: float = 0.0) -> pb.Service:
        request = pb.RestartServiceRequest(
            name=name,
            has_timeout=timeout is not None,
            timeout_seconds=timeout or 0.0,
            wait_timeout_seconds=wait_timeout,
        )
        result: pb.Service = self._t.call(self._stub.RestartService, request, None)
        return result

    def status(self, names: Sequence[str] = ()) -> list[pb.Service]:
        request = pb.GetServicesStatusRequest(names=list(names))
        result: pb.ServicesStatusResponse = self._t.call(self._stub.GetServicesStatus, request, None)
        return list(result.services)

    def health(
        self, names: Sequence[str] = (), *, heartbeat: float = 0.0, once: bool = False, timeout: float | None = None
    ) -> Iterator[pb.HealthUpdate]:
        """Health now, then (unless ``once``) each change and heartbeats, until you stop reading."""
        request = pb.StreamHealthRequest(names=list(names), heartbeat_seconds=heartbeat, once=once)
        return self._t.stream(self._stub.StreamHealth, request, timeout)

    def pull(self, images: Sequence[str] = (), *, timeout: float | None = None) -> Iterator[pb.PullProgress]:
        """The engine's real progress pulling ``images`` (none: every Docker service's)."""
        return self._t.stream(self._stub.PullImages, pb.PullImagesRequest(images=list(images)), timeout)

    def logs(
        self, name: str, *, tail: int = 0, since: float = 0.0, follow: bool = False, timeout: float | None = None
    ) -> Iterator[pb.ServiceLogLine]:
        request = pb.StreamLogsRequest(name=name, tail=tail, since=since, follow=follow)
        return self._t.stream(self._stub.StreamLogs, request, timeout)
