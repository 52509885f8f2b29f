"""``/v1/environments`` and ``/v1/cleanup`` over REST: each route builds the request message of
its RPC from the path, query and body, and calls the same handler as gRPC (``handlers.py``).

Bodies are checked by the models below (unknown fields are refused: a typo such as
``"package"`` must not silently create an env without packages); answers are the protobuf JSON
mapping of the RPC's reply, documented from the ``.proto`` contract (``api/rest_proto.py``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from envplane.api.rest_errors import ERROR_RESPONSES
from envplane.api.rest_params import TimeoutHeader, deadline_from, int32
from envplane.api.rest_proto import ProtoResponse, proto_response
from envplane.api.rest_streams import ndjson, ndjson_response_doc
from envplane.environments import handlers, wire
from envplane.environments.service import EnvironmentService
from envplane.v1 import environments_pb2 as pb

ENV = "/environments/{workflow_id}/{node_id}"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateEnvBody(_Body):
    workflow_id: str = Field(description="Workflow id (letters, digits, '._-').")
    node_id: str
    version_id: str = ""
    packages: list[str] = Field(default_factory=list, description="PEP 508 requirements.")
    requirements: str = Field("", description="requirements.txt content (requirements only).")
    python_version: str = Field("", description="e.g. '3.11'; empty = the daemon's default.")
    fail_if_busy: bool = False
    exist_ok: bool = Field(False, description="Return an existing env made from the same spec instead of 409.")
    pyproject_toml: str = Field("", description="Create from this project file and its uv_lock (no packages).")
    uv_lock: str = Field("", description="The lock of pyproject_toml, installed as it is (no resolution).")


class DepsBody(_Body):
    packages: list[str] = Field(default_factory=list)
    requirements: str = ""
    fail_if_busy: bool = False


class CleanupBody(_Body):
    idle_hours: float = Field(gt=0, description="Remove envs unused for this many hours.")
    dry_run: bool = False


VersionQuery = Annotated[str, Query(description="Version id; empty = the unversioned env.")]


def _create_request(body: CreateEnvBody) -> pb.CreateEnvRequest:
    return pb.CreateEnvRequest(
        ref=wire.ref(body.workflow_id, body.node_id, body.version_id),
        packages=body.packages,
        requirements=body.requirements,
        python_version=body.python_version,
        fail_if_busy=body.fail_if_busy,
        exist_ok=body.exist_ok,
        pyproject_toml=body.pyproject_toml,
        uv_lock=body.uv_lock,
    )


def _deps_request(workflow_id: str, node_id: str, version_id: str, body: DepsBody) -> pb.DepsRequest:
    return pb.DepsRequest(
        ref=wire.ref(workflow_id, node_id, version_id),
        packages=body.packages,
        requirements=body.requirements,
        fail_if_busy=body.fail_if_busy,
    )


_NDJSON_PROGRESS = ndjson_response_doc(pb.CreateEnvProgress, "CreateEnvProgress (the last carries the environment)")
_DEPS_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: proto_response(pb.DepsResponse, "the env after the change, the audit record, what changed")
}


def create_router(service: EnvironmentService) -> APIRouter:
    """The routes, over ``service``."""
    router = APIRouter(
        prefix="/v1", tags=["environments"], responses=ERROR_RESPONSES, default_response_class=ProtoResponse
    )

    @router.post(
        "/environments",
        status_code=201,
        summary="Create an environment",
        responses={
            201: proto_response(pb.Environment, "the environment, READY"),
            200: proto_response(pb.Environment, "exist_ok: an env with the same spec existed and is returned as it is"),
        },
    )
    async def create_env(body: CreateEnvBody, timeout: TimeoutHeader = None) -> Response:
        env = await handlers.create_env(service, _create_request(body), deadline=deadline_from(timeout))
        return ProtoResponse(env, status_code=200 if env.reused else 201)

    @router.post(
        "/environments:stream",
        summary="Create an environment, streaming progress as NDJSON",
        response_class=StreamingResponse,
        responses={200: _NDJSON_PROGRESS},
    )
    async def create_env_stream(body: CreateEnvBody, timeout: TimeoutHeader = None) -> StreamingResponse:
        message = _create_request(body)
        return await ndjson(handlers.create_env_stream(service, message, deadline=deadline_from(timeout)))

    @router.get(
        "/environments",
        summary="List environments",
        responses={200: proto_response(pb.ListEnvsResponse, "a page of environments")},
    )
    async def list_envs(
        workflow_id: str = "",
        node_id: str = "",
        status: Annotated[str, Query(description="CREATING, READY, FAILED or BROKEN")] = "",
        page_size: int = 0,
        page_token: str = "",
    ) -> Response:
        message = pb.ListEnvsRequest(
            workflow_id=workflow_id,
            node_id=node_id,
            status=wire.status_value(status),
            page_size=int32("page_size", page_size),
            page_token=page_token,
        )
        return ProtoResponse(await handlers.list_envs(service, message))

    @router.get(ENV, summary="Get an environment's status", responses={200: proto_response(pb.Environment, "the env")})
    async def get_env(workflow_id: str, node_id: str, version_id: VersionQuery = "") -> Response:
        message = pb.GetEnvStatusRequest(ref=wire.ref(workflow_id, node_id, version_id))
        return ProtoResponse(await handlers.get_env_status(service, message))

    @router.delete(
        ENV, summary="Delete an environment", responses={200: proto_response(pb.DeleteEnvResponse, "deleted")}
    )
    async def delete_env(
        workflow_id: str,
        node_id: str,
        version_id: VersionQuery = "",
        fail_if_busy: bool = False,
        timeout: TimeoutHeader = None,
    ) -> Response:
        message = pb.DeleteEnvRequest(ref=wire.ref(workflow_id, node_id, version_id), fail_if_busy=fail_if_busy)
        return ProtoResponse(await handlers.delete_env(service, message, deadline=deadline_from(timeout)))

    @router.get(
        ENV + "/dependencies",
        summary="List declared and locked dependencies",
        responses={200: proto_response(pb.ListDepsResponse, "declared specs and locked versions")},
    )
    async def list_deps(workflow_id: str, node_id: str, version_id: VersionQuery = "") -> Response:
        message = pb.ListDepsRequest(ref=wire.ref(workflow_id, node_id, version_id))
        return ProtoResponse(await handlers.list_deps(service, message))

    @router.post(ENV + "/dependencies", summary="Add dependencies", responses=_DEPS_RESPONSE)
    async def add_deps(
        workflow_id: str,
        node_id: str,
        body: DepsBody,
        version_id: VersionQuery = "",
        timeout: TimeoutHeader = None,
    ) -> Response:
        message = _deps_request(workflow_id, node_id, version_id, body)
        return ProtoResponse(await handlers.add_deps(service, message, deadline=deadline_from(timeout)))

    @router.patch(
        ENV + "/dependencies", summary="Upgrade dependencies (all when none are named)", responses=_DEPS_RESPONSE
    )
    async def update_deps(
        workflow_id: str,
        node_id: str,
        body: DepsBody,
        version_id: VersionQuery = "",
        timeout: TimeoutHeader = None,
    ) -> Response:
        message = _deps_request(workflow_id, node_id, version_id, body)
        return ProtoResponse(await handlers.update_deps(service, message, deadline=deadline_from(timeout)))

    @router.delete(ENV + "/dependencies", summary="Remove dependencies", responses=_DEPS_RESPONSE)
    async def remove_deps(
        workflow_id: str,
        node_id: str,
        packages: Annotated[list[str], Query(description="Names to remove (repeat the parameter).")],
        version_id: VersionQuery = "",
        fail_if_busy: bool = False,
        timeout: TimeoutHeader = None,
    ) -> Response:
        message = pb.DepsRequest(
            ref=wire.ref(workflow_id, node_id, version_id), packages=packages, fail_if_busy=fail_if_busy
        )
        return ProtoResponse(await handlers.remove_deps(service, message, deadline=deadline_from(timeout)))

    @router.post(
        ENV + "/sync",
        summary="Make the venv match the lock (rebuild if missing)",
        responses={200: proto_response(pb.SyncEnvResponse, "the env, READY, and the audit record")},
    )
    async def sync_env(
        workflow_id: str,
        node_id: str,
        version_id: VersionQuery = "",
        fail_if_busy: bool = False,
        timeout: TimeoutHeader = None,
    ) -> Response:
        message = pb.SyncEnvRequest(ref=wire.ref(workflow_id, node_id, version_id), fail_if_busy=fail_if_busy)
        return ProtoResponse(await handlers.sync_env(service, message, deadline=deadline_from(timeout)))

    @router.get(
        ENV + "/export",
        summary="Export pyproject.toml, uv.lock and pinned requirements.txt",
        responses={200: proto_response(pb.ExportEnvResponse, "the project files")},
    )
    async def export_env(
        workflow_id: str, node_id: str, version_id: VersionQuery = "", timeout: TimeoutHeader = None
    ) -> Response:
        message = pb.ExportEnvRequest(ref=wire.ref(workflow_id, node_id, version_id))
        return ProtoResponse(await handlers.export_env(service, message, deadline=deadline_from(timeout)))

    @router.post(
        "/cleanup",
        summary="Delete environments idle for N hours, and unreferenced builds",
        responses={200: proto_response(pb.CleanupResponse, "what was (or, dry_run, would be) removed")},
    )
    async def cleanup(body: CleanupBody) -> Response:
        message = pb.CleanupRequest(idle_hours=body.idle_hours, dry_run=body.dry_run)
        return ProtoResponse(await handlers.cleanup(service, message))

    return router
