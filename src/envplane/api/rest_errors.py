"""The HTTP status table: the ONE place envplane errors become HTTP responses.

Error bodies are ``{"error": {"code": "<gRPC code name>", "message": "...", "detail": "..."}}``
so a script can branch on the same code names on both faces.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from envplane import errors

logger = logging.getLogger("envplane.rest")

STATUS_TABLE: tuple[tuple[type[errors.EnvplaneError], int, str], ...] = (
    (errors.InvalidArgument, 422, "INVALID_ARGUMENT"),
    (errors.NotFound, 404, "NOT_FOUND"),
    (errors.AlreadyExists, 409, "ALREADY_EXISTS"),
    (errors.FailedPrecondition, 409, "FAILED_PRECONDITION"),
    (errors.DeadlineExceeded, 504, "DEADLINE_EXCEEDED"),
    (errors.Unavailable, 503, "UNAVAILABLE"),
    (errors.Unimplemented, 501, "UNIMPLEMENTED"),
    (errors.InternalError, 500, "INTERNAL"),
)


def http_status_for(exc: errors.EnvplaneError) -> tuple[int, str]:
    for cls, status, code in STATUS_TABLE:
        if isinstance(exc, cls):
            return status, code
    return 500, "INTERNAL"


def error_body(code: str, message: str, detail: str = "") -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message, "detail": detail}}


def install(app: FastAPI) -> None:
    @app.exception_handler(errors.EnvplaneError)
    async def _envplane_error(_: Request, exc: errors.EnvplaneError) -> JSONResponse:
        status, code = http_status_for(exc)
        return JSONResponse(error_body(code, exc.message, exc.detail), status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for item in exc.errors():
            where = ".".join(str(part) for part in item.get("loc", ()) if part != "body")
            problems.append(f"{where}: {item.get('msg', 'invalid')}")
        return JSONResponse(error_body("INVALID_ARGUMENT", "; ".join(problems) or "invalid request"), status_code=422)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error in REST handler")
        return JSONResponse(error_body("INTERNAL", f"internal error: {type(exc).__name__}: {exc}"), status_code=500)
