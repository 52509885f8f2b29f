"""The HTTP status table: the ONE place envplane errors become HTTP responses.

Every error body, whatever raised it (the service, request validation, an unknown route, a
refused request), is ``{"error": {"code": "<gRPC code name>", "message": "...", "detail": "..."}}``
so a script can branch on the same code names on both faces. ``ERROR_RESPONSES`` documents
that shape for every route in the OpenAPI document.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from envplane import errors

logger = logging.getLogger("envplane.rest")

STATUS_TABLE: tuple[tuple[type[errors.EnvplaneError], int, str], ...] = (
    (errors.InvalidArgument, 422, "INVALID_ARGUMENT"),
    (errors.NotFound, 404, "NOT_FOUND"),
    (errors.AlreadyExists, 409, "ALREADY_EXISTS"),
    (errors.FailedPrecondition, 409, "FAILED_PRECONDITION"),
    (errors.ResourceExhausted, 429, "RESOURCE_EXHAUSTED"),
    (errors.Aborted, 409, "ABORTED"),
    (errors.OutOfRange, 410, "OUT_OF_RANGE"),
    (errors.DeadlineExceeded, 504, "DEADLINE_EXCEEDED"),
    (errors.Unauthenticated, 401, "UNAUTHENTICATED"),
    (errors.Unavailable, 503, "UNAVAILABLE"),
    (errors.Unimplemented, 501, "UNIMPLEMENTED"),
    (errors.InternalError, 500, "INTERNAL"),
    (errors.CommandError, 500, "UNKNOWN"),
)
# Refusals that happen before a route runs, by HTTP status.
TRANSPORT_CODES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    413: "INVALID_ARGUMENT",
    415: "INVALID_ARGUMENT",
}

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string", "description": "the gRPC status name, e.g. NOT_FOUND"},
                "message": {"type": "string", "description": "what went wrong, naming the problem"},
                "detail": {"type": "string", "description": "long tool output (uv's), or empty"},
            },
            "required": ["code", "message", "detail"],
        },
        "http_status": {"type": "integer", "description": "set on the last line of a stream that failed"},
    },
    "required": ["error"],
}
_ERROR_STATUSES = {
    400: "refused: a Host header this daemon does not answer to",
    401: "a bearer token is required (ENVPLANE_AUTH_TOKEN) and was missing or wrong",
    403: "refused: a cross-site browser request",
    404: "no such environment, operation or route",
    409: "exists already, busy, in the wrong state, or cut off (ABORTED)",
    410: "OUT_OF_RANGE: events after this cursor were pruned by retention",
    415: "a body that is not JSON",
    422: "invalid argument",
    429: "RESOURCE_EXHAUSTED: a pool's queue or session table is full",
    500: "internal error",
    501: "switched off on this daemon",
    503: "UNAVAILABLE: a worker died during the call, or the Docker engine cannot be reached",
    504: "the request's deadline (X-Request-Timeout) passed",
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"description": text, "content": {"application/json": {"schema": ERROR_SCHEMA}}}
    for status, text in _ERROR_STATUSES.items()
}


def http_status_for(exc: errors.EnvplaneError) -> tuple[int, str]:
    for cls, status, code in STATUS_TABLE:
        if isinstance(exc, cls):
            return status, code
    return 500, "INTERNAL"


def error_body(code: str, message: str, detail: str = "") -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message, "detail": detail}}


def error_response(status: int, code: str, message: str, detail: str = "") -> JSONResponse:
    return JSONResponse(error_body(code, message, detail), status_code=status)


def envplane_error_response(exc: errors.EnvplaneError) -> JSONResponse:
    status, code = http_status_for(exc)
    return error_response(status, code, exc.message, exc.detail)


def _problems(exc: RequestValidationError) -> str:
    problems = []
    for item in exc.errors():
        where = ".".join(str(part) for part in item.get("loc", ()) if part != "body") or "body"
        message = str(item.get("msg", "invalid"))
        if item.get("type") == "json_invalid":
            where = "body"
            message = f"not valid JSON ({item.get('ctx', {}).get('error', 'parse error')})"
        problems.append(f"{where}: {message}")
    return "; ".join(problems) or "invalid request"


def install(app: FastAPI) -> None:
    @app.exception_handler(errors.EnvplaneError)
    async def _envplane_error(_: Request, exc: errors.EnvplaneError) -> JSONResponse:
        return envplane_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, "INVALID_ARGUMENT", _problems(exc))

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        code = TRANSPORT_CODES.get(exc.status_code, "INTERNAL" if exc.status_code >= 500 else "INVALID_ARGUMENT")
        if exc.status_code == 404:
            message = f"no route {request.method} {request.url.path} (the API is described at /docs)"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        else:
            message = str(exc.detail)
        return JSONResponse(error_body(code, message), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error in REST handler")
        return error_response(500, "INTERNAL", f"internal error: {type(exc).__name__}: {exc}")
