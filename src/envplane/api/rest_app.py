"""The FastAPI application: /v1 routes, /health, /metrics, /openapi.json and /docs."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request, Response

from envplane import __version__
from envplane.api import rest_environments, rest_errors
from envplane.environments import EnvironmentService
from envplane.metrics import CONTENT_TYPE, Metrics
from envplane.store import repository as repo


def create_app(service: EnvironmentService, metrics: Metrics) -> FastAPI:
    app = FastAPI(
        title="envplane",
        version=__version__,
        description=(
            "Reproducible per-node uv environments for workflow engines. The same operations "
            "are served over gRPC (`envplane.v1.EnvironmentService`); response bodies are the "
            "protobuf JSON mapping of the same messages. Errors: "
            '`{"error": {"code", "message", "detail"}}` with 404/409/422/500/504.'
        ),
    )
    app.state.environments = service
    app.state.metrics = metrics
    rest_errors.install(app)
    app.include_router(rest_environments.router)

    @app.get("/health", summary="Liveness and basic figures")
    async def health(request: Request) -> dict[str, Any]:
        svc: EnvironmentService = request.app.state.environments
        return {
            "status": "ok",
            "version": __version__,
            "uv_running": svc.uv.running,
            "event_watchers": svc.bus.watchers,
        }

    @app.get("/metrics", summary="Prometheus metrics (text exposition format)")
    async def metrics_route(request: Request) -> Response:
        svc: EnvironmentService = request.app.state.environments
        counts = await svc.store.run(repo.env_status_counts)
        for status in ("CREATING", "READY", "FAILED", "BROKEN"):
            metrics.environments.labels(status).set(counts.get(status, 0))
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    return app
