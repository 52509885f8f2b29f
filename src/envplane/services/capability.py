"""How the daemon plugs the services capability in: its service (what a previous daemon left
running adopted at start; everything stopped at stop unless told to leave it),
``envplane.v1.ServiceManager`` and the original ``env_manager.v1.EnvManagerService`` on gRPC,
and ``/v1/services`` on REST."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import APIRouter

from envplane.core.capability import Core, GrpcService
from envplane.env_manager.v1 import env_manager_pb2, env_manager_pb2_grpc
from envplane.services.faces.env_manager import EnvManagerServicer
from envplane.services.faces.grpc_servicer import ServiceManagerServicer
from envplane.services.faces.rest_router import create_router
from envplane.services.service.services_service import ServicesService
from envplane.services.service.workloads import Workloads
from envplane.v1 import services_pb2, services_pb2_grpc

logger = logging.getLogger("envplane.services")
SERVICE_MANAGER = services_pb2.DESCRIPTOR.services_by_name["ServiceManager"].full_name
ENV_MANAGER = env_manager_pb2.DESCRIPTOR.services_by_name["EnvManagerService"].full_name


class ServicesCapability:
    name = "services"

    def __init__(self, core: Core, workloads: Workloads | None = None) -> None:
        self.service = ServicesService(core, workloads)
        self._compat = core.settings.compat_env_manager

    async def start(self) -> None:
        adopted, removed = await self.service.start()
        if adopted or removed:
            logger.info(
                "services from the previous daemon: adopted %s; removed %s",
                ", ".join(adopted) or "none",
                ", ".join(removed) or "none",
            )

    def grpc_services(self) -> Sequence[GrpcService]:
        service = self.service
        services = [
            GrpcService(
                SERVICE_MANAGER,
                lambda server: services_pb2_grpc.add_ServiceManagerServicer_to_server(
                    ServiceManagerServicer(service), server
                ),
            )
        ]
        if self._compat:
            services.append(
                GrpcService(
                    ENV_MANAGER,
                    lambda server: env_manager_pb2_grpc.add_EnvManagerServiceServicer_to_server(
                        EnvManagerServicer(service), server
                    ),
                )
            )
        return services

    def rest_router(self) -> APIRouter:
        return create_router(self.service)

    def health(self) -> Mapping[str, Any]:
        return self.service.health()

    async def stop(self) -> None:
        await self.service.close()
