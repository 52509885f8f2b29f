"""Building the grpc.aio server: envplane.v1 services, the UV Venv Manager compat face
(envmanager.EnvManagerService, unless switched off), grpc.health.v1 and server reflection."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from envplane.api.grpc_environments import EnvironmentServicer
from envplane.api.grpc_envmanager import SERVICE_NAME as ENVMANAGER_SERVICE
from envplane.api.grpc_envmanager import EnvManagerServicer
from envplane.environments import EnvironmentService
from envplane.envmanager import env_manager_pb2_grpc
from envplane.v1 import environments_pb2, environments_pb2_grpc

ENVIRONMENT_SERVICE = environments_pb2.DESCRIPTOR.services_by_name["EnvironmentService"].full_name
MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # uv.lock files of big envs run to megabytes


class GrpcServer:
    """Owns the gRPC server and its health servicer (so shutdown can report NOT_SERVING)."""

    def __init__(self, service: EnvironmentService, address: str, *, compat_envmanager: bool = True) -> None:
        self.address = address
        self.server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.so_reuseport", 0),
            ]
        )
        environments_pb2_grpc.add_EnvironmentServiceServicer_to_server(EnvironmentServicer(service), self.server)
        self.services = [ENVIRONMENT_SERVICE]
        if compat_envmanager:
            env_manager_pb2_grpc.add_EnvManagerServiceServicer_to_server(EnvManagerServicer(service), self.server)
            self.services.append(ENVMANAGER_SERVICE)
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection((*self.services, health.SERVICE_NAME, reflection.SERVICE_NAME), self.server)
        self.port = self.server.add_insecure_port(address)
        if self.port == 0:
            raise OSError(f"cannot listen for gRPC on {address} (address in use or invalid)")

    async def start(self) -> None:
        await self.server.start()
        for name in ("", *self.services):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    async def stop(self, grace: float) -> None:
        for name in ("", *self.services):
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.server.stop(grace)
