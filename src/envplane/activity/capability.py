"""How the daemon plugs the activity slice in: OperationService and EventService on gRPC,
``/v1/operations`` and ``/v1/events`` on REST, all over the core's records."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import APIRouter

from envplane.activity.faces.grpc_servicer import EventServicer, OperationServicer
from envplane.activity.faces.rest_router import create_router
from envplane.core.capability import Core, GrpcService
from envplane.v1 import events_pb2, events_pb2_grpc, operations_pb2, operations_pb2_grpc

OPERATION_SERVICE = operations_pb2.DESCRIPTOR.services_by_name["OperationService"].full_name
EVENT_SERVICE = events_pb2.DESCRIPTOR.services_by_name["EventService"].full_name


class ActivityCapability:
    name = "activity"

    def __init__(self, core: Core) -> None:
        self._core = core

    async def start(self) -> None:
        return None  # nothing to recover: the core owns the tables and their retention

    def grpc_services(self) -> Sequence[GrpcService]:
        activity = self._core.activity
        return [
            GrpcService(
                OPERATION_SERVICE,
                lambda server: operations_pb2_grpc.add_OperationServiceServicer_to_server(
                    OperationServicer(activity), server
                ),
            ),
            GrpcService(
                EVENT_SERVICE,
                lambda server: events_pb2_grpc.add_EventServiceServicer_to_server(EventServicer(activity), server),
            ),
        ]

    def rest_router(self) -> APIRouter:
        return create_router(self._core.activity)

    def health(self) -> Mapping[str, Any]:
        return {"event_watchers": self._core.bus.watchers}

    async def stop(self) -> None:
        return None
