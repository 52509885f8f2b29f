"""Server streams over REST as NDJSON: one protobuf-JSON message per line; or, for a client
that sends ``Accept: text/event-stream`` (a browser's EventSource), as server-sent events: one
``data:`` event per message and an ``error`` event for a failure half-way.

A handler's stream is started before the response is: a bad request fails with its own status
and error body, not as a 200 whose first line is an error. Once lines have gone out, a failure
can only be said in the stream: the last line is then the error body with ``http_status``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, cast

from fastapi.responses import StreamingResponse
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message

from envplane.api.protojson import to_json
from envplane.api.rest_errors import error_body, http_status_for
from envplane.api.rest_proto import message_schema
from envplane.errors import EnvplaneError

NDJSON = "application/x-ndjson"
SSE = "text/event-stream"


def wants_sse(accept: str | None) -> bool:
    return bool(accept) and SSE in str(accept)


def ndjson_response_doc(message: type[Message], what: str, *, sse: bool = False) -> dict[str, Any]:
    """The OpenAPI entry of such a route's 200 answer: lines of ``message`` (``sse``: or
    server-sent events, for a route that offers them)."""
    descriptor = cast(Descriptor, message.DESCRIPTOR)  # the C (upb) descriptor has the same interface
    return {
        "description": f"One JSON object per line: {what}; an error object with http_status as the last line "
        "if the stream fails after it started.",
        "content": {
            NDJSON: {"schema": message_schema(descriptor)},
            **({SSE: {"schema": {"type": "string"}}} if sse else {}),
        },
    }


def _line(data: dict[str, Any]) -> bytes:
    return (json.dumps(data) + "\n").encode()


def _event(data: dict[str, Any], kind: str = "") -> bytes:
    head = f"event: {kind}\n" if kind else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()


async def ndjson(stream: AsyncIterator[Message], *, sse: bool = False) -> StreamingResponse:
    """The stream as NDJSON (or SSE); its first message is awaited here (errors before it are
    statuses)."""
    try:
        first: Message | None = await anext(stream)
    except StopAsyncIteration:
        first = None

    async def lines() -> AsyncIterator[bytes]:
        try:
            if first is not None:
                yield frame(to_json(first))
                async for item in stream:
                    yield frame(to_json(item))
        except EnvplaneError as exc:
            status, code = http_status_for(exc)
            body = {**error_body(code, exc.message, exc.detail), "http_status": status}
            yield _event(body, "error") if sse else _line(body)
        finally:
            await stream.aclose()  # type: ignore[attr-defined]

    frame = _event if sse else _line
    return StreamingResponse(lines(), media_type=SSE if sse else NDJSON)
