"""Request builders shared by the sync and asyncio clients."""

from __future__ import annotations

from collections.abc import Sequence

from envplane.errors import InvalidArgument
from envplane.v1 import environments_pb2 as pb


def env_status(name: str) -> pb.EnvStatus.ValueType:
    if not name:
        return pb.ENV_STATUS_UNSPECIFIED
    try:
        return pb.EnvStatus.Value(name.upper())
    except ValueError as exc:
        raise InvalidArgument(f"status {name!r} is not one of CREATING, READY, FAILED, BROKEN") from exc


def ref(workflow_id: str, node_id: str, version_id: str = "") -> pb.EnvRef:
    return pb.EnvRef(workflow_id=workflow_id, node_id=node_id, version_id=version_id)


def create(
    workflow_id: str,
    node_id: str,
    version_id: str,
    packages: Sequence[str],
    requirements: str,
    python_version: str,
    fail_if_busy: bool,
    exist_ok: bool = False,
) -> pb.CreateEnvRequest:
    return pb.CreateEnvRequest(
        ref=ref(workflow_id, node_id, version_id),
        packages=list(packages),
        requirements=requirements,
        python_version=python_version,
        fail_if_busy=fail_if_busy,
        exist_ok=exist_ok,
    )


def deps(
    workflow_id: str,
    node_id: str,
    version_id: str,
    packages: Sequence[str],
    requirements: str,
    fail_if_busy: bool,
) -> pb.DepsRequest:
    return pb.DepsRequest(
        ref=ref(workflow_id, node_id, version_id),
        packages=list(packages),
        requirements=requirements,
        fail_if_busy=fail_if_busy,
    )


def list_envs(workflow_id: str, node_id: str, status: str, page_size: int, page_token: str) -> pb.ListEnvsRequest:
    return pb.ListEnvsRequest(
        workflow_id=workflow_id,
        node_id=node_id,
        status=env_status(status),
        page_size=page_size,
        page_token=page_token,
    )


def operations(
    workflow_id: str, node_id: str, operation: str, status: str, page_size: int, page_token: str
) -> pb.GetOperationsRequest:
    return pb.GetOperationsRequest(
        workflow_id=workflow_id,
        node_id=node_id,
        operation=operation,
        status=status.upper(),
        page_size=page_size,
        page_token=page_token,
    )
