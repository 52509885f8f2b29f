"""How the daemon plugs the observations capability in: its service (the evidence rebuilt from
the stored observations at start), ``envplane.v1.ObservationService`` and the earlier plugin's
``nf_ai_comms.AiActionService`` on gRPC, and ``/v1/observations`` (with Nextflow's weblog) and
``/v1/pipelines`` on REST."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import APIRouter

from envplane.core.capability import Core, GrpcService
from envplane.nf_ai_comms import nf_ai_comms_pb2, nf_ai_comms_pb2_grpc
from envplane.observations.faces.grpc_servicer import ObservationServicer
from envplane.observations.faces.nf_ai_comms import AiActionServicer
from envplane.observations.faces.rest_router import create_router
from envplane.observations.service.observation_service import ObservationService
from envplane.v1 import observations_pb2, observations_pb2_grpc

logger = logging.getLogger("envplane.observations")
OBSERVATION_SERVICE = observations_pb2.DESCRIPTOR.services_by_name["ObservationService"].full_name
AI_ACTION_SERVICE = nf_ai_comms_pb2.DESCRIPTOR.services_by_name["AiActionService"].full_name


class ObservationsCapability:
    name = "observations"

    def __init__(self, core: Core) -> None:
        self.service = ObservationService(core)
        self._compat = core.settings.compat_nf_ai_comms

    async def start(self) -> None:
        learned = await self.service.start()
        if learned:
            logger.info("observations: the evidence of %d completed task(s) read back", learned)

    def grpc_services(self) -> Sequence[GrpcService]:
        service = self.service
        services = [
            GrpcService(
                OBSERVATION_SERVICE,
                lambda server: observations_pb2_grpc.add_ObservationServiceServicer_to_server(
                    ObservationServicer(service), server
                ),
            )
        ]
        if self._compat:
            services.append(
                GrpcService(
                    AI_ACTION_SERVICE,
                    lambda server: nf_ai_comms_pb2_grpc.add_AiActionServiceServicer_to_server(
                        AiActionServicer(service), server
                    ),
                )
            )
        return services

    def rest_router(self) -> APIRouter:
        return create_router(self.service)

    def health(self) -> Mapping[str, Any]:
        return {"observed_processes": len(self.service.decider.processes())}

    async def stop(self) -> None:
        return None
