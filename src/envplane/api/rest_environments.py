"""The REST face of the environment service (``/v1/...``): parse, call, convert.

Responses are the protobuf JSON mapping of the ``envplane.v1`` messages (``convert.py``),
so REST and gRPC return the same fields under the same names.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from envplane.api import convert
from envplane.api.progress_stream import progress_stream
from envplane.api.rest_errors import error_body, http_status_for
from envplane.environments import EnvId, EnvironmentService
from envplane.errors import EnvplaneError, InvalidArgument

Json = dict[str, Any]
router = APIRouter(prefix="/v1")
ENV = "/environments/{workflow_id}/{node_id}"


class CreateEnvBody(BaseModel):
    workflow_id: str = Field(description="Workflow id (letters, digits, '._-').")
    node_id: str
    version_id: str = ""
    packages: list[str] = Field(default_factory=list, description="PEP 508 requirements.")
    requirements: str = Field("", description="requirements.txt content (requirements only).")
    python_version: str = Field("", description="e.g. '3.11'; empty = the daemon's default.")
    fail_if_busy: bool = False
    exist_ok: bool = Field(False, description="Return an existing env made from the same spec instead of 409.")


class DepsBody(BaseModel):
    packages: list[str] = Field(default_factory=list)
    requirements: str = ""
    fail_if_busy: bool = False


class CleanupBody(BaseModel):
    idle_hours: float = Field(gt=0, description="Remove envs unused for this many hours.")
    dry_run: bool = False


VersionQuery = Annotated[str, Query(description="Version id; empty = the unversioned env.")]
TimeoutHeader = Annotated[
    float | None,
    Header(alias="X-Request-Timeout", description="Seconds this request may wait (deadline)."),
]


def _service(request: Request) -> EnvironmentService:
    service: EnvironmentService = request.app.state.environments
    return service


def _deadline(timeout: float | None) -> float | None:
    if timeout is None:
        return None
    if timeout <= 0:
        raise InvalidArgument(f"X-Request-Timeout must be > 0 seconds, got {timeout}")
    return time.monotonic() + timeout


def _env(workflow_id: str, node_id: str, version_id: str) -> EnvId:
    return EnvId.parse(workflow_id, node_id, version_id)


@router.post(
    "/environments",
    status_code=201,
    summary="Create an environment",
    responses={200: {"description": "exist_ok: an env with the same spec existed and is returned as it is"}},
)
async def create_env(body: CreateEnvBody, request: Request, response: Response, timeout: TimeoutHeader = None) -> Json:
    view = await _service(request).create(
        _env(body.workflow_id, body.node_id, body.version_id),
        body.packages,
        body.requirements,
        body.python_version,
        deadline=_deadline(timeout),
        fail_if_busy=body.fail_if_busy,
        exist_ok=body.exist_ok,
    )
    if view.reused:
        response.status_code = 200  # nothing was created
    return convert.to_json(convert.environment(view))


@router.post(
    "/environments:stream",
    summary="Create an environment, streaming progress as NDJSON",
    response_description="One JSON object per line: CreateEnvProgress, or {'error': ...} last.",
)
async def create_env_stream(body: CreateEnvBody, request: Request, timeout: TimeoutHeader = None) -> StreamingResponse:
    service = _service(request)
    env = _env(body.workflow_id, body.node_id, body.version_id)
    deadline = _deadline(timeout)

    async def lines() -> AsyncIterator[bytes]:
        stream = progress_stream(
            lambda on_progress: service.create(
                env,
                body.packages,
                body.requirements,
                body.python_version,
                deadline=deadline,
                fail_if_busy=body.fail_if_busy,
                exist_ok=body.exist_ok,
                on_progress=on_progress,
            )
        )
        async with contextlib.aclosing(stream):
            try:
                async for item in stream:
                    message = convert.stream_progress(item)
                    yield (json.dumps(convert.to_json(message)) + "\n").encode()
            except EnvplaneError as exc:
                status, code = http_status_for(exc)
                yield (json.dumps({**error_body(code, exc.message, exc.detail), "http_status": status}) + "\n").encode()

    return StreamingResponse(lines(), media_type="application/x-ndjson")


@router.get("/environments", summary="List environments")
async def list_envs(
    request: Request,
    workflow_id: str = "",
    node_id: str = "",
    status: str = Query("", description="CREATING, READY, FAILED or BROKEN"),
    page_size: int = 0,
    page_token: str = "",
) -> Json:
    page = await _service(request).list_envs(
        workflow_id=workflow_id, node_id=node_id, status=status, page_size=page_size, page_token=page_token
    )
    return convert.to_json(convert.list_envs(page))


@router.get(ENV, summary="Get an environment's status")
async def get_env(workflow_id: str, node_id: str, request: Request, version_id: VersionQuery = "") -> Json:
    view = await _service(request).status(_env(workflow_id, node_id, version_id))
    return convert.to_json(convert.environment(view))


@router.delete(ENV, summary="Delete an environment")
async def delete_env(
    workflow_id: str,
    node_id: str,
    request: Request,
    version_id: VersionQuery = "",
    fail_if_busy: bool = False,
    timeout: TimeoutHeader = None,
) -> Json:
    env = _env(workflow_id, node_id, version_id)
    op = await _service(request).delete(env, deadline=_deadline(timeout), fail_if_busy=fail_if_busy)
    return {"ref": convert.to_json(convert.ref(env)), "operation": convert.to_json(convert.operation(op))}


@router.get(ENV + "/dependencies", summary="List declared and locked dependencies")
async def list_deps(workflow_id: str, node_id: str, request: Request, version_id: VersionQuery = "") -> Json:
    view = await _service(request).list_deps(_env(workflow_id, node_id, version_id))
    return convert.to_json(convert.list_deps(view))


@router.post(ENV + "/dependencies", summary="Add dependencies")
async def add_deps(
    workflow_id: str,
    node_id: str,
    body: DepsBody,
    request: Request,
    version_id: VersionQuery = "",
    timeout: TimeoutHeader = None,
) -> Json:
    outcome = await _service(request).add_deps(
        _env(workflow_id, node_id, version_id),
        body.packages,
        body.requirements,
        deadline=_deadline(timeout),
        fail_if_busy=body.fail_if_busy,
    )
    return convert.to_json(convert.deps_response(outcome))


@router.patch(ENV + "/dependencies", summary="Upgrade dependencies (all when none are named)")
async def update_deps(
    workflow_id: str,
    node_id: str,
    body: DepsBody,
    request: Request,
    version_id: VersionQuery = "",
    timeout: TimeoutHeader = None,
) -> Json:
    outcome = await _service(request).update_deps(
        _env(workflow_id, node_id, version_id),
        body.packages,
        body.requirements,
        deadline=_deadline(timeout),
        fail_if_busy=body.fail_if_busy,
    )
    return convert.to_json(convert.deps_response(outcome))


@router.delete(ENV + "/dependencies", summary="Remove dependencies")
async def remove_deps(
    workflow_id: str,
    node_id: str,
    request: Request,
    packages: Annotated[list[str], Query(description="Names to remove (repeat the parameter).")],
    version_id: VersionQuery = "",
    fail_if_busy: bool = False,
    timeout: TimeoutHeader = None,
) -> Json:
    outcome = await _service(request).remove_deps(
        _env(workflow_id, node_id, version_id),
        packages,
        deadline=_deadline(timeout),
        fail_if_busy=fail_if_busy,
    )
    return convert.to_json(convert.deps_response(outcome))


@router.post(ENV + "/sync", summary="Make the venv match the lock (rebuild if missing)")
async def sync_env(
    workflow_id: str,
    node_id: str,
    request: Request,
    version_id: VersionQuery = "",
    fail_if_busy: bool = False,
    timeout: TimeoutHeader = None,
) -> Json:
    outcome = await _service(request).sync(
        _env(workflow_id, node_id, version_id), deadline=_deadline(timeout), fail_if_busy=fail_if_busy
    )
    return {
        "environment": convert.to_json(convert.environment(outcome.env)),
        "operation": convert.to_json(convert.operation(outcome.operation)),
    }


@router.get(ENV + "/export", summary="Export pyproject.toml, uv.lock and pinned requirements.txt")
async def export_env(
    workflow_id: str,
    node_id: str,
    request: Request,
    version_id: VersionQuery = "",
    timeout: TimeoutHeader = None,
) -> Json:
    view = await _service(request).export(_env(workflow_id, node_id, version_id), deadline=_deadline(timeout))
    return convert.to_json(convert.export(view))


@router.post("/cleanup", summary="Delete environments idle for N hours, and unreferenced builds")
async def cleanup(body: CleanupBody, request: Request) -> Json:
    outcome = await _service(request).cleanup(body.idle_hours, dry_run=body.dry_run)
    return convert.to_json(convert.cleanup(outcome))


@router.get("/operations", summary="The audit log, newest first")
async def get_operations(
    request: Request,
    workflow_id: str = "",
    node_id: str = "",
    operation: str = "",
    status: str = Query("", description="RUNNING, SUCCEEDED or FAILED"),
    page_size: int = 0,
    page_token: str = "",
) -> Json:
    page = await _service(request).operations(
        workflow_id=workflow_id,
        node_id=node_id,
        operation=operation,
        status=status,
        page_size=page_size,
        page_token=page_token,
    )
    return convert.to_json(convert.operations(page))


@router.delete("/operations", summary="Delete finished audit records")
async def delete_operations(request: Request, workflow_id: str = "", node_id: str = "", before: float = 0.0) -> Json:
    deleted = await _service(request).delete_operations(workflow_id=workflow_id, node_id=node_id, before=before or None)
    return {"deleted_count": deleted.count}


@router.get(
    "/events",
    summary="Domain events as Server-Sent Events, resumable (Last-Event-ID or after_cursor)",
)
async def watch_events(
    request: Request,
    after_cursor: int = 0,
    types: Annotated[list[str] | None, Query()] = None,
    follow: bool = True,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    after = after_cursor
    if last_event_id:
        try:
            after = int(last_event_id)
        except ValueError as exc:
            raise InvalidArgument(f"Last-Event-ID {last_event_id!r} is not an event cursor") from exc
    events = _service(request).watch(after, types=types or [], follow=follow)

    async def stream() -> AsyncIterator[bytes]:
        async for record in events:
            data = json.dumps(convert.to_json(convert.event(record)))
            yield f"id: {record.cursor}\nevent: {record.type}\ndata: {data}\n\n".encode()

    return StreamingResponse(stream(), media_type="text/event-stream")
