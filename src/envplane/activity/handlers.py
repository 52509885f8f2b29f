"""One function per RPC of OperationService and EventService: request message -> the core's
activity queries -> reply message, shared by the gRPC servicers and the REST router."""

from __future__ import annotations

from collections.abc import AsyncIterator

from envplane.api import messages as common
from envplane.core.activity import Activity
from envplane.core.audit import OperationFilter
from envplane.v1 import common_pb2, events_pb2, operations_pb2


async def list_operations(
    activity: Activity, request: operations_pb2.ListOperationsRequest
) -> operations_pb2.ListOperationsResponse:
    where = OperationFilter(
        kind=request.kind,
        subject_id=request.subject_id,
        workflow_id=request.workflow_id,
        node_id=request.node_id,
        operation=request.operation,
        status=request.status.upper(),
    )
    page = await activity.operations(where, page_size=request.page_size, page_token=request.page_token)
    return operations_pb2.ListOperationsResponse(
        operations=[common.operation(o) for o in page.items], next_page_token=page.next_page_token, total=page.total
    )


async def get_operation(activity: Activity, request: operations_pb2.GetOperationRequest) -> common_pb2.Operation:
    return common.operation(await activity.operation(request.id))


async def delete_operations(
    activity: Activity, request: operations_pb2.DeleteOperationsRequest
) -> operations_pb2.DeleteOperationsResponse:
    where = OperationFilter(kind=request.kind, workflow_id=request.workflow_id, node_id=request.node_id)
    count, _ = await activity.delete_operations(where, before=request.before or None)
    return operations_pb2.DeleteOperationsResponse(deleted_count=count)


async def watch_events(
    activity: Activity, request: events_pb2.WatchEventsRequest, *, cursor_field: str = "after_cursor"
) -> AsyncIterator[events_pb2.Event]:
    """Checked before the first event: a bad cursor fails the call, not the stream."""
    records = await activity.watch(
        request.after_cursor,
        types=list(request.types),
        kinds=list(request.kinds),
        follow=request.follow,
        cursor_field=cursor_field,
    )

    async def events() -> AsyncIterator[events_pb2.Event]:
        async for record in records:
            yield common.event(record)

    return events()
