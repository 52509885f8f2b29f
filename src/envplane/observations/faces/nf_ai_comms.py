"""The earlier Nextflow plugin's ``nf_ai_comms.AiActionService`` on the daemon's port: the same
service as envplane.v1 (checked, decided, stored), answered in the original's ``Action``
(``action_details`` is the decision as JSON). A bad observation is INVALID_ARGUMENT."""

from __future__ import annotations

from typing import TypeAlias

import grpc

from envplane.api.grpc_errors import mapped
from envplane.nf_ai_comms import nf_ai_comms_pb2 as pb
from envplane.nf_ai_comms import nf_ai_comms_pb2_grpc as pb_grpc
from envplane.observations.ai_comms import action_of, observation_of
from envplane.observations.service.observation_service import ObservationService

Ctx: TypeAlias = grpc.aio.ServicerContext


class AiActionServicer(pb_grpc.AiActionServiceServicer):
    def __init__(self, service: ObservationService) -> None:
        self._svc = service

    @mapped
    async def SendTaskObservation(self, request: pb.TaskObservation, context: Ctx) -> pb.Action:
        outcome = await self._svc.observe(observation_of(request))
        return action_of(request, outcome.decision, outcome.action_id)
