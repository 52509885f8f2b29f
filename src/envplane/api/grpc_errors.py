"""The gRPC status table: the ONE place envplane errors become gRPC statuses.

A status travels in HTTP/2 trailers, which grpcio limits (8 KiB soft, 16 KiB hard, for all
trailing metadata together): a status over the limit reaches the client as RESOURCE_EXHAUSTED
and the real error is lost. So the status message is bounded (``MAX_STATUS_BYTES`` once
percent-encoded): the headline, then as much of the detail as fits, from its end, which is where
uv says what went wrong. The whole detail stays in the failed operation's audit record, whose
id rides in the trailer ``envplane-operation-id``; the exact class rides in ``envplane-error``.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import grpc

from envplane import errors

logger = logging.getLogger("envplane.grpc")

# Most specific class first: the first ``isinstance`` match wins.
STATUS_TABLE: tuple[tuple[type[errors.EnvplaneError], grpc.StatusCode], ...] = (
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.Aborted, grpc.StatusCode.ABORTED),
    (errors.OutOfRange, grpc.StatusCode.OUT_OF_RANGE),
    (errors.DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED),
    (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
    (errors.Unimplemented, grpc.StatusCode.UNIMPLEMENTED),
    (errors.InternalError, grpc.StatusCode.INTERNAL),
    (errors.CommandError, grpc.StatusCode.UNKNOWN),
)
ERROR_CLASS_KEY = "envplane-error"  # trailing metadata: the exact class, e.g. "EnvBusy"
OPERATION_KEY = "envplane-operation-id"  # trailing metadata: the failed operation's audit record
MAX_STATUS_BYTES = 6 * 1024
MAX_HEADLINE_BYTES = 1024


def status_for(exc: errors.EnvplaneError) -> grpc.StatusCode:
    for cls, code in STATUS_TABLE:
        if isinstance(exc, cls):
            return code
    return grpc.StatusCode.INTERNAL


def wire_size(text: str) -> int:
    """Bytes of ``text`` as grpc-message carries it (percent-encoded outside printable ASCII)."""
    return sum(1 if 0x20 <= byte <= 0x7E and byte != 0x25 else 3 for byte in text.encode())


def _head(text: str, budget: int) -> str:
    if wire_size(text) <= budget:
        return text
    while text and wire_size(text) > budget - 3:
        text = text[: max(len(text) - max(len(text) // 8, 1), 0)]
    return text + "…"


def _tail(text: str, budget: int) -> str:
    while text and wire_size(text) > budget:
        text = text[max(len(text) // 8, 1) :]
    return text


def status_message(exc: errors.EnvplaneError) -> str:
    """The headline (one line), then the end of the detail, within ``MAX_STATUS_BYTES``."""
    headline = _head(" ".join(exc.message.split("\n")), MAX_HEADLINE_BYTES)
    if not exc.detail:
        return headline
    where = f"the audit record of operation {exc.operation_id}" if exc.operation_id else "the daemon's log"
    budget = MAX_STATUS_BYTES - wire_size(headline) - 200
    detail = _tail(exc.detail, budget)
    if len(detail) < len(exc.detail):
        cut = len(exc.detail) - len(detail)
        detail = f"…({cut} characters cut here; the whole output is in {where})\n{detail.lstrip()}"
    return f"{headline}\n{detail}"


async def abort(context: grpc.aio.ServicerContext, exc: Exception) -> None:
    """End the call with the status of ``exc`` (bounded), whatever its size."""
    if isinstance(exc, errors.EnvplaneError):
        trailers: tuple[tuple[str, str], ...] = ((ERROR_CLASS_KEY, type(exc).__name__),)
        if exc.operation_id:
            trailers += ((OPERATION_KEY, str(exc.operation_id)),)
        await context.abort(status_for(exc), status_message(exc), trailing_metadata=trailers)
    logger.exception("unexpected error in gRPC handler")
    await context.abort(grpc.StatusCode.INTERNAL, _head(f"internal error: {type(exc).__name__}: {exc}", 2048))


F = TypeVar("F", bound=Callable[..., Any])


def mapped(handler: F) -> F:
    """Wrap a servicer method (unary or server-streaming) so errors become statuses."""
    if inspect.isasyncgenfunction(handler):

        @functools.wraps(handler)
        async def stream(self: Any, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            try:
                async for item in handler(self, request, context):
                    yield item
            except Exception as exc:
                await abort(context, exc)

        return stream  # type: ignore[return-value]

    @functools.wraps(handler)
    async def unary(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await handler(self, request, context)
        except Exception as exc:
            await abort(context, exc)

    return unary  # type: ignore[return-value]


def deadline_of(context: grpc.aio.ServicerContext) -> float | None:
    """The call's deadline as a ``time.monotonic()`` instant (None when the caller set none)."""
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining
