"""The grpc.aio server: the capabilities' services, grpc.health.v1 and server reflection, behind
the request guard (token, malformed requests)."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from envplane.api.grpc_guard import RequestGuard
from envplane.core.capability import GrpcService

MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # uv.lock files of big envs run to megabytes


class GrpcServer:
    """Owns the gRPC server and its health servicer (so shutdown can report NOT_SERVING).

    Binding happens here, in the constructor: a port that is taken fails before anything
    starts, with a message naming the address."""

    def __init__(self, services: Sequence[GrpcService], address: str, *, token: str | None = None) -> None:
        self.address = address
        self.server = grpc.aio.server(
            interceptors=[RequestGuard(token)],
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.so_reuseport", 0),
            ],
        )
        for service in services:
            service.register(self.server)
        self.services = [service.name for service in services]
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection((*self.services, health.SERVICE_NAME, reflection.SERVICE_NAME), self.server)
        try:
            self.port = self.server.add_insecure_port(address)
        except RuntimeError as exc:  # grpcio >= 1.5x raises where it used to return 0
            raise OSError(f"cannot listen for gRPC on {address} (address in use or not available)") from exc
        if self.port == 0:
            raise OSError(f"cannot listen for gRPC on {address} (address in use or not available)")
        self._started = False

    async def start(self) -> None:
        await self.server.start()
        self._started = True
        for name in ("", *self.services):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    async def stop(self, grace: float) -> None:
        """Report NOT_SERVING, stop accepting, let calls in flight finish within ``grace``.
        Safe twice, and safe when the server never started (it releases the bound port)."""
        if self._started:
            for name in ("", *self.services):
                await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.server.stop(grace)
        self._started = False
