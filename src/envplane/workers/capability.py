"""How the daemon plugs the workers capability in: its service (stored pools brought back at
start), ``envplane.v1.WorkerService`` on gRPC and ``/v1/pools`` on REST."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import APIRouter

from envplane.core.capability import Core, GrpcService
from envplane.v1 import workers_pb2, workers_pb2_grpc
from envplane.workers.faces.grpc_servicer import WorkerServicer
from envplane.workers.faces.rest_router import create_router
from envplane.workers.service.worker_service import EnvironmentAccess, WorkerService

logger = logging.getLogger("envplane.workers")
WORKER_SERVICE = workers_pb2.DESCRIPTOR.services_by_name["WorkerService"].full_name


class WorkersCapability:
    name = "workers"

    def __init__(self, core: Core, environments: EnvironmentAccess) -> None:
        self.service = WorkerService(core, environments)

    async def start(self) -> None:
        count = await self.service.start()
        if count:
            logger.info("brought back %d declared pool(s) with fresh workers", count)

    def grpc_services(self) -> Sequence[GrpcService]:
        service = self.service
        return [
            GrpcService(
                WORKER_SERVICE,
                lambda server: workers_pb2_grpc.add_WorkerServiceServicer_to_server(WorkerServicer(service), server),
            )
        ]

    def rest_router(self) -> APIRouter:
        return create_router(self.service)

    def health(self) -> Mapping[str, Any]:
        return self.service.health()

    async def stop(self) -> None:
        await self.service.close()
