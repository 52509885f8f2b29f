"""What every gRPC call passes before it reaches a servicer: the bearer token, and a request
that decodes.

- **Token.** With a token set (``ENVPLANE_AUTH_TOKEN`` or ``ENVPLANE_AUTH_TOKEN_FILE``), every
  call but ``grpc.health.v1.Health`` must carry the metadata ``authorization: Bearer <token>``;
  the comparison takes constant time. Without one, calls are UNAUTHENTICATED.
- **Malformed requests.** grpcio answers bytes that do not parse as the request message with
  UNKNOWN and logs a traceback per call, so anyone could fill the log. Here the request
  deserializer never raises: a request that does not decode is INVALID_ARGUMENT, logged as one
  line.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from envplane.api.bearer import BearerToken

logger = logging.getLogger("envplane.grpc")

OPEN_SERVICES = frozenset({"grpc.health.v1.Health"})


class _Undecodable:
    """What the lenient deserializer returns for bytes that are not the request message."""

    def __init__(self, error: Exception) -> None:
        self.error = error


def _lenient(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except (DecodeError, ValueError, TypeError) as exc:
            return _Undecodable(exc)

    return deserialize


def _refusing(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    """``handler`` with its behaviour replaced by one that ends the call with ``code``."""

    async def unary(_request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(code, message)

    async def streaming(_request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        await context.abort(code, message)
        yield None  # pragma: no cover - abort raises

    if handler.request_streaming and handler.response_streaming:
        return handler._replace(stream_stream=streaming)
    if handler.request_streaming:
        return handler._replace(stream_unary=unary)
    if handler.response_streaming:
        return handler._replace(unary_stream=streaming)
    return handler._replace(unary_unary=unary)


def _checking_decode(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
    """For unary-request methods: a request that did not decode is INVALID_ARGUMENT."""
    if handler.request_streaming:
        return handler  # reflection's stream: grpcio's own handling

    def refuse(request: _Undecodable) -> str:
        logger.warning("refused %s: the request is not a valid message (%s)", method, request.error)
        return f"the request to {method} is not a valid protobuf message of its type: {request.error}"

    if handler.response_streaming:
        behaviour = handler.unary_stream

        async def unary_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            if isinstance(request, _Undecodable):
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, refuse(request))
            async for item in behaviour(request, context):
                yield item

        return handler._replace(request_deserializer=_lenient(handler.request_deserializer), unary_stream=unary_stream)
    unary_behaviour = handler.unary_unary

    async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if isinstance(request, _Undecodable):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, refuse(request))
        return await unary_behaviour(request, context)

    return handler._replace(request_deserializer=_lenient(handler.request_deserializer), unary_unary=unary_unary)


class RequestGuard(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # grpc ships no types
    def __init__(self, token: str | None) -> None:
        self._token = BearerToken(token) if token else None
        self._checked: dict[str, grpc.RpcMethodHandler] = {}  # method -> its decode-checking handler

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler  # unknown method: grpcio answers UNIMPLEMENTED
        method: str = handler_call_details.method
        service = method.lstrip("/").partition("/")[0]
        if self._token is not None and service not in OPEN_SERVICES:
            metadata = dict(handler_call_details.invocation_metadata or ())
            presented = metadata.get("authorization")
            why = self._token.refusal(presented.encode() if isinstance(presented, str) else None)
            if why:
                return _refusing(
                    handler,
                    grpc.StatusCode.UNAUTHENTICATED,
                    f"this daemon requires a token and the call {why}: send the metadata "
                    "'authorization: Bearer <token>' (envplane's clients send ENVPLANE_AUTH_TOKEN)",
                )
        checked = self._checked.get(method)
        if checked is None:
            checked = self._checked[method] = _checking_decode(handler, method)
        return checked
