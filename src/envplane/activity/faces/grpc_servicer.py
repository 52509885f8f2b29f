"""``envplane.v1.OperationService`` and ``envplane.v1.EventService`` over gRPC."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TypeAlias

import grpc

from envplane.activity import handlers
from envplane.api.grpc_errors import mapped
from envplane.core.activity import Activity
from envplane.v1 import common_pb2, events_pb2, events_pb2_grpc, operations_pb2, operations_pb2_grpc

Ctx: TypeAlias = grpc.aio.ServicerContext


class OperationServicer(operations_pb2_grpc.OperationServiceServicer):
    def __init__(self, activity: Activity) -> None:
        self._activity = activity

    @mapped
    async def ListOperations(
        self, request: operations_pb2.ListOperationsRequest, context: Ctx
    ) -> operations_pb2.ListOperationsResponse:
        return await handlers.list_operations(self._activity, request)

    @mapped
    async def GetOperation(self, request: operations_pb2.GetOperationRequest, context: Ctx) -> common_pb2.Operation:
        return await handlers.get_operation(self._activity, request)

    @mapped
    async def DeleteOperations(
        self, request: operations_pb2.DeleteOperationsRequest, context: Ctx
    ) -> operations_pb2.DeleteOperationsResponse:
        return await handlers.delete_operations(self._activity, request)


class EventServicer(events_pb2_grpc.EventServiceServicer):
    def __init__(self, activity: Activity) -> None:
        self._activity = activity

    @mapped
    async def WatchEvents(
        self, request: events_pb2.WatchEventsRequest, context: Ctx
    ) -> AsyncIterator[events_pb2.Event]:
        async for event in await handlers.watch_events(self._activity, request):
            yield event
