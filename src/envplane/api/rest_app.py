"""The FastAPI application: the capabilities' routers under ``/v1``, ``/health``, ``/metrics``,
``/openapi.json`` and ``/docs`` (Swagger UI served from the installed package, so the docs work
on an air-gapped machine), behind the request guard (``rest_guard.py``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI, Response
from fastapi_offline import FastAPIOffline
from starlette.middleware.cors import CORSMiddleware

from envplane import __version__
from envplane.api import rest_errors
from envplane.api.rest_guard import RequestGuard
from envplane.core.metrics import CONTENT_TYPE, Metrics

DESCRIPTION = (
    "envplane: environments for workflow engines. The same operations are served over gRPC "
    "(package `envplane.v1`); bodies are the protobuf JSON mapping of the same messages. Errors are "
    '`{"error": {"code", "message", "detail"}}` with the HTTP status of the gRPC code '
    "(422 INVALID_ARGUMENT, 404 NOT_FOUND, 409 ALREADY_EXISTS / FAILED_PRECONDITION / ABORTED, "
    "410 OUT_OF_RANGE, 401 UNAUTHENTICATED, 501 UNIMPLEMENTED, 504 DEADLINE_EXCEEDED, 500 INTERNAL). "
    "A request deadline is the header `X-Request-Timeout: <seconds>`."
)


HEALTH_SCHEMA = {
    "type": "object",
    "properties": {"status": {"const": "ok"}, "version": {"type": "string"}, "state": {"type": "string"}},
    "required": ["status", "version", "state"],
    "additionalProperties": {"type": ["integer", "string"]},
}


def create_app(
    routers: Sequence[APIRouter],
    *,
    metrics: Metrics,
    health: Callable[[], Mapping[str, Any]],
    hosts: frozenset[str] | None,
    cors_origins: Sequence[str] = (),
    token: str | None = None,
) -> FastAPI:
    """``health`` gives the figures of ``GET /health``; ``hosts`` the Host values answered
    (None: any); ``token`` the bearer token routes require (None: none)."""
    app = FastAPIOffline(title="envplane", version=__version__, description=DESCRIPTION, redoc_url=None)
    rest_errors.install(app)
    for router in routers:
        app.include_router(router)

    @app.get(
        "/health",
        summary="Liveness and basic figures (no token needed)",
        tags=["daemon"],
        responses={
            200: {"description": "the daemon is serving", "content": {"application/json": {"schema": HEALTH_SCHEMA}}},
            **rest_errors.ERROR_RESPONSES,
        },
    )
    async def get_health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__, **health()}

    @app.get(
        "/metrics",
        summary="Prometheus metrics",
        tags=["daemon"],
        response_class=Response,
        responses={
            200: {
                "description": "the text exposition format",
                "content": {CONTENT_TYPE: {"schema": {"type": "string"}}},
            },
            **rest_errors.ERROR_RESPONSES,
        },
    )
    async def get_metrics() -> Response:
        return Response(await metrics.render(), media_type=CONTENT_TYPE)

    if cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cors_origins),
            allow_methods=["*"],
            allow_headers=["Authorization", "Content-Type", "X-Request-Timeout", "Last-Event-ID"],
        )
    app.add_middleware(RequestGuard, hosts=hosts, cors_origins=cors_origins, token=token)
    return app
