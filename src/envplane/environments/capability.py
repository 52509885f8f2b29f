"""How the daemon plugs the environments capability in: its service (with recovery at start),
``envplane.v1.EnvironmentService`` and, unless switched off, the UV Venv Manager protocol on
gRPC, ``/v1/environments`` and ``/v1/cleanup`` on REST."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import APIRouter

from envplane.core.capability import Core, GrpcService
from envplane.environments.faces.envmanager import SERVICE_NAME as ENVMANAGER_SERVICE
from envplane.environments.faces.envmanager import EnvManagerServicer
from envplane.environments.faces.grpc_servicer import EnvironmentServicer
from envplane.environments.faces.rest_router import create_router
from envplane.environments.service import EnvironmentService
from envplane.envmanager import env_manager_pb2_grpc
from envplane.v1 import environments_pb2, environments_pb2_grpc

logger = logging.getLogger("envplane.environments")
ENVIRONMENT_SERVICE = environments_pb2.DESCRIPTOR.services_by_name["EnvironmentService"].full_name


class EnvironmentsCapability:
    name = "environments"

    def __init__(self, core: Core) -> None:
        self.service = EnvironmentService(core)

    async def start(self) -> None:
        report = await self.service.start()
        if report.unclean:
            logger.warning("recovered environments after an unclean stop: %s", report)

    def grpc_services(self) -> Sequence[GrpcService]:
        service = self.service
        services = [
            GrpcService(
                ENVIRONMENT_SERVICE,
                lambda server: environments_pb2_grpc.add_EnvironmentServiceServicer_to_server(
                    EnvironmentServicer(service), server
                ),
            )
        ]
        if service.settings.compat_envmanager:
            services.append(
                GrpcService(
                    ENVMANAGER_SERVICE,
                    lambda server: env_manager_pb2_grpc.add_EnvManagerServiceServicer_to_server(
                        EnvManagerServicer(service), server
                    ),
                )
            )
        return services

    def rest_router(self) -> APIRouter:
        return create_router(self.service)

    def health(self) -> Mapping[str, Any]:
        return {"uv_running": self.service.uv.running}

    async def stop(self) -> None:
        await self.service.close()
