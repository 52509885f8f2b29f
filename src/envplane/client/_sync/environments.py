# Generated from client/_async/environments.py by scripts/unasync.py (make client): DO NOT EDIT.
"""``client.environments``: every ``envplane.v1.EnvironmentService`` RPC as a method.

``version_id`` is always a keyword (``""`` = the unversioned env); ``timeout`` (seconds)
overrides the client's deadline for one call; ``fail_if_busy`` fails at once instead of
waiting for an env another operation holds.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from envplane.client._sync.transport import Transport
from envplane.environments import wire
from envplane.v1 import environments_pb2 as pb
from envplane.v1 import environments_pb2_grpc as pb_grpc


class Environments:
    def __init__(self, transport: Transport) -> None:
        self._t = transport
        self._stub = pb_grpc.EnvironmentServiceStub(transport.channel)

    @staticmethod
    def _create_request(
        workflow_id: str, node_id: str, *, version_id: str, packages: Sequence[str], **fields: Any
    ) -> pb.CreateEnvRequest:
        return pb.CreateEnvRequest(ref=wire.ref(workflow_id, node_id, version_id), packages=list(packages), **fields)

    def create(
        self,
        workflow_id: str,
        node_id: str,
        *,
        version_id: str = "",
        packages: Sequence[str] = (),
        requirements: str = "",
        python_version: str = "",
        pyproject_toml: str = "",
        uv_lock: str = "",
        exist_ok: bool = False,
        fail_if_busy: bool = False,
        timeout: float | None = None,
    ) -> pb.Environment:
        """Create an env from packages (and/or requirements.txt content), or from a
        ``pyproject_toml`` + ``uv_lock`` installed as they are. ``exist_ok``: an env made from
        the same spec is returned as it is (``reused`` is set)."""
        request = self._create_request(
            workflow_id,
            node_id,
            version_id=version_id,
            packages=packages,
            requirements=requirements,
            python_version=python_version,
            pyproject_toml=pyproject_toml,
            uv_lock=uv_lock,
            exist_ok=exist_ok,
            fail_if_busy=fail_if_busy,
        )
        result: pb.Environment = self._t.call(self._stub.CreateEnv, request, timeout)
        return result

    def create_stream(
        self,
        workflow_id: str,
        node_id: str,
        *,
        version_id: str = "",
        packages: Sequence[str] = (),
        requirements: str = "",
        python_version: str = "",
        pyproject_toml: str = "",
        uv_lock: str = "",
        exist_ok: bool = False,
        fail_if_busy: bool = False,
        timeout: float | None = None,
    ) -> Iterator[pb.CreateEnvProgress]:
        """:meth:`create`, yielding its progress as it happens; the last item carries the env."""
        request = self._create_request(
            workflow_id,
            node_id,
            version_id=version_id,
            packages=packages,
            requirements=requirements,
            python_version=python_version,
            pyproject_toml=pyproject_toml,
            uv_lock=uv_lock,
            exist_ok=exist_ok,
            fail_if_busy=fail_if_busy,
        )
        return self._t.stream(self._stub.CreateEnvStream, request, timeout)

    def get(self, workflow_id: str, node_id: str, *, version_id: str = "") -> pb.Environment:
        request = pb.GetEnvStatusRequest(ref=wire.ref(workflow_id, node_id, version_id))
        result: pb.Environment = self._t.call(self._stub.GetEnvStatus, request, None)
        return result

    def list(
        self,
        *,
        workflow_id: str = "",
        node_id: str = "",
        status: str = "",
        page_size: int = 0,
        page_token: str = "",
    ) -> pb.ListEnvsResponse:
        """One page; :meth:`iter` follows the pages for you."""
        request = pb.ListEnvsRequest(
            workflow_id=workflow_id,
            node_id=node_id,
            status=wire.status_value(status),
            page_size=page_size,
            page_token=page_token,
        )
        result: pb.ListEnvsResponse = self._t.call(self._stub.ListEnvs, request, None)
        return result

    def iter(self, *, workflow_id: str = "", node_id: str = "", status: str = "") -> Iterator[pb.Environment]:
        """Every matching environment, following page tokens."""
        token = ""
        while True:
            page = self.list(workflow_id=workflow_id, node_id=node_id, status=status, page_token=token)
            for environment in page.environments:
                yield environment
            if not (token := page.next_page_token):
                return

    def delete(
        self,
        workflow_id: str,
        node_id: str,
        *,
        version_id: str = "",
        fail_if_busy: bool = False,
        timeout: float | None = None,
    ) -> pb.DeleteEnvResponse:
        request = pb.DeleteEnvRequest(ref=wire.ref(workflow_id, node_id, version_id), fail_if_busy=fail_if_busy)
        result: pb.DeleteEnvResponse = self._t.call(self._stub.DeleteEnv, request, timeout)
        return result

    def add_deps(
        self,
        workflow_id: str,
        node_id: str,
        packages: Sequence[str] = (),
        *,
        version_id: str = "",
        requirements: str = "",
        fail_if_busy: bool = False,
        timeout: float | None = None,
    ) -> pb.DepsResponse:
        request = pb.DepsRequest(
            ref=wire.ref(workflow_id, node_id, version_id),
            packages=list(packages),
            requirements=requirements,
            fail_if_busy=fail_if_busy,
        )
        result: pb.DepsResponse = self._t.call(self._stub.AddDeps, request, timeout)
        return result

    def update_deps(
        self,
        workflow_id: str,
        node_id: str,
        packages: Sequence[str] = (),
        *,
        version_id: str = "",
        requirements: str = "",
        fail_if_busy: bool = False,
        timeout: float | None = None,
    ) -> pb.DepsResponse:
        """Upgrade the named packages (every package when none are named)."""
        request = pb.DepsRequest(
            ref=wire.ref(workflow_id, node_id, version_id),
            packages=list(packages),
            requirements=requirements,
            fail_if_busy=fail_if_busy,
        )
        result: pb.DepsResponse = self._t.call(self._stub.UpdateDeps, request, timeout)
        return result

    def remove_deps(
        self,
        workflow_id: str,
        node_id: str,
        packages: Sequence[str],
        *,
        version_id: str = "",
        fail_if_busy: bool = False,
        timeout: float | None = None,
    ) -> pb.DepsResponse:
        request = pb.DepsRequest(
            ref=wire.ref(workflow_id, node_id, version_id), packages=list(packages), fail_if_busy=fail_if_busy
        )
        result: pb.DepsResponse = self._t.call(self._stub.RemoveDeps, request, timeout)
        return result

    def list_deps(self, workflow_id: str, node_id: str, *, version_id: str = "") -> pb.ListDepsResponse:
        request = pb.ListDepsRequest(ref=wire.ref(workflow_id, node_id, version_id))
        result: pb.ListDepsResponse = self._t.call(self._stub.ListDeps, request, None)
        return result

    def sync(
        self,
        workflow_id: str,
        node_id: str,
        *,
        version_id: str = "",
        fail_if_busy: bool = False,
        timeout: float | None = None,
    ) -> pb.SyncEnvResponse:
        request = pb.SyncEnvRequest(ref=wire.ref(workflow_id, node_id, version_id), fail_if_busy=fail_if_busy)
        result: pb.SyncEnvResponse = self._t.call(self._stub.SyncEnv, request, timeout)
        return result

    def export(
        self, workflow_id: str, node_id: str, *, version_id: str = "", timeout: float | None = None
    ) -> pb.ExportEnvResponse:
        request = pb.ExportEnvRequest(ref=wire.ref(workflow_id, node_id, version_id))
        result: pb.ExportEnvResponse = self._t.call(self._stub.ExportEnv, request, timeout)
        return result

    def cleanup(self, idle_hours: float, *, dry_run: bool = False) -> pb.CleanupResponse:
        request = pb.CleanupRequest(idle_hours=idle_hours, dry_run=dry_run)
        result: pb.CleanupResponse = self._t.call(self._stub.Cleanup, request, None)
        return result
