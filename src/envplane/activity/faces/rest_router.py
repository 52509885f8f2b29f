"""``/v1/operations`` and ``/v1/events`` over REST, through the same handlers as gRPC.

Events are Server-Sent Events: ``id:`` is the cursor, so a browser's ``EventSource`` (or
``curl -H 'Last-Event-ID: N'``) resumes where it stopped; an idle stream sends a comment line
every ``KEEPALIVE_SECONDS`` so proxies do not cut it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import StreamingResponse

from envplane.activity import handlers
from envplane.api.protojson import to_json
from envplane.api.rest_errors import ERROR_RESPONSES
from envplane.api.rest_params import int32
from envplane.api.rest_proto import ProtoResponse, message_schema, proto_response
from envplane.core.activity import Activity, check_cursor, check_operation_id
from envplane.errors import InvalidArgument, echo
from envplane.v1 import common_pb2, events_pb2, operations_pb2

KEEPALIVE_SECONDS = 15.0

_SSE = {
    "description": "Server-Sent Events: `id: <cursor>`, `event: <type>`, `data: <Event as JSON>` "
    f"(schema below); a `:` comment line every {KEEPALIVE_SECONDS:g} s while idle.",
    "content": {
        "text/event-stream": {
            "schema": {"type": "string"},
            "x-data-schema": message_schema(events_pb2.Event.DESCRIPTOR),
        }
    },
}


def _cursor(after_cursor: int, last_event_id: str | None) -> tuple[int, str]:
    """The cursor to resume after, and the field it came from (for the error message)."""
    if not last_event_id:
        return after_cursor, "after_cursor"
    try:
        return int(last_event_id), "Last-Event-ID"
    except ValueError as exc:
        raise InvalidArgument(f"Last-Event-ID {echo(last_event_id)} is not an event cursor") from exc


async def _with_keepalive(events: AsyncIterator[events_pb2.Event]) -> AsyncIterator[bytes]:
    pending: asyncio.Future[events_pb2.Event] | None = None
    try:
        while True:
            pending = pending or asyncio.ensure_future(anext(events))
            done, _ = await asyncio.wait({pending}, timeout=KEEPALIVE_SECONDS)
            if not done:
                yield b": keep-alive\n\n"
                continue
            try:
                event = pending.result()
            except StopAsyncIteration:
                return
            finally:
                pending = None
            data = json.dumps(to_json(event))
            yield f"id: {event.cursor}\nevent: {event.type}\ndata: {data}\n\n".encode()
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
        with contextlib.suppress(Exception):
            await events.aclose()  # type: ignore[attr-defined]


def create_router(activity: Activity) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["activity"], responses=ERROR_RESPONSES, default_response_class=ProtoResponse)

    @router.get(
        "/operations",
        summary="The audit log of every capability, newest first",
        responses={200: proto_response(operations_pb2.ListOperationsResponse, "a page of audit records")},
    )
    async def list_operations(
        kind: Annotated[str, Query(description="environment, ... ('' = any)")] = "",
        subject_id: str = "",
        workflow_id: str = "",
        node_id: str = "",
        operation: str = "",
        status: Annotated[str, Query(description="RUNNING, SUCCEEDED or FAILED")] = "",
        page_size: int = 0,
        page_token: str = "",
    ) -> Response:
        message = operations_pb2.ListOperationsRequest(
            kind=kind,
            subject_id=subject_id,
            workflow_id=workflow_id,
            node_id=node_id,
            operation=operation,
            status=status,
            page_size=int32("page_size", page_size),
            page_token=page_token,
        )
        return ProtoResponse(await handlers.list_operations(activity, message))

    @router.get(
        "/operations/{operation_id}",
        summary="One audit record, with its whole output",
        responses={200: proto_response(common_pb2.Operation, "the record")},
    )
    async def get_operation(operation_id: int) -> Response:
        # Checked before the message is built: an int64 field cannot even hold 2^63.
        message = operations_pb2.GetOperationRequest(id=check_operation_id(operation_id, "operation id"))
        return ProtoResponse(await handlers.get_operation(activity, message))

    @router.delete(
        "/operations",
        summary="Delete finished audit records (records of running operations are kept)",
        responses={200: proto_response(operations_pb2.DeleteOperationsResponse, "how many went")},
    )
    async def delete_operations(
        kind: str = "", workflow_id: str = "", node_id: str = "", before: float = 0.0
    ) -> Response:
        message = operations_pb2.DeleteOperationsRequest(
            kind=kind, workflow_id=workflow_id, node_id=node_id, before=before
        )
        return ProtoResponse(await handlers.delete_operations(activity, message))

    @router.get(
        "/events",
        summary="Domain events as Server-Sent Events, resumable (Last-Event-ID or after_cursor)",
        response_class=StreamingResponse,
        responses={200: _SSE},
    )
    async def watch_events(
        after_cursor: int = 0,
        types: Annotated[list[str] | None, Query()] = None,
        kinds: Annotated[list[str] | None, Query()] = None,
        follow: bool = True,
        last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    ) -> StreamingResponse:
        after, field = _cursor(after_cursor, last_event_id)
        message = events_pb2.WatchEventsRequest(
            after_cursor=check_cursor(after, field), types=types or [], kinds=kinds or [], follow=follow
        )
        events = await handlers.watch_events(activity, message, cursor_field=field)
        return StreamingResponse(_with_keepalive(events), media_type="text/event-stream")

    return router
