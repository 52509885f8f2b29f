"""The gRPC status table: the ONE place envplane errors become gRPC statuses."""

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
    (errors.DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED),
    (errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
    (errors.Unimplemented, grpc.StatusCode.UNIMPLEMENTED),
    (errors.InternalError, grpc.StatusCode.INTERNAL),
)
MAX_DETAILS = 16 * 1024  # gRPC carries details in a header: keep uv's output bounded


def status_for(exc: errors.EnvplaneError) -> grpc.StatusCode:
    for cls, code in STATUS_TABLE:
        if isinstance(exc, cls):
            return code
    return grpc.StatusCode.INTERNAL


def _details(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= MAX_DETAILS else text[: MAX_DETAILS - 20] + "\n…(truncated)"


ERROR_CLASS_KEY = "envplane-error"  # trailing metadata: the exact class, e.g. "EnvBusy"


async def _abort(context: grpc.aio.ServicerContext, exc: Exception) -> None:
    if isinstance(exc, errors.EnvplaneError):
        await context.abort(status_for(exc), _details(exc), trailing_metadata=((ERROR_CLASS_KEY, type(exc).__name__),))
    logger.exception("unexpected error in gRPC handler")
    await context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}")


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
                await _abort(context, exc)

        return stream  # type: ignore[return-value]

    @functools.wraps(handler)
    async def unary(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await handler(self, request, context)
        except Exception as exc:
            await _abort(context, exc)

    return unary  # type: ignore[return-value]


def deadline_of(context: grpc.aio.ServicerContext) -> float | None:
    """The call's deadline as a ``time.monotonic()`` instant (None when the caller set none)."""
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining
