"""The blocking client. One channel per client; close it (or use ``with``)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

import grpc

from envplane.client import _requests as build
from envplane.client._errors import translate
from envplane.client.address import default_address
from envplane.client.retry import NO_RETRY, RECONNECT_OPTIONS, Attempts, RetryPolicy
from envplane.v1 import environments_pb2 as pb
from envplane.v1 import environments_pb2_grpc as pb_grpc


class EnvplaneClient:
    """Typed access to ``envplane.v1.EnvironmentService``; failures raise ``envplane.errors``.

    ``timeout`` (seconds) becomes each call's gRPC deadline; the daemon waits for a busy
    environment at most that long (``fail_if_busy=True`` fails at once instead).
    ``retry`` retries unary calls that find the daemon UNAVAILABLE, within that deadline;
    by default a call fails at once (the CLI reports a stopped daemon immediately).
    """

    def __init__(
        self, address: str | None = None, *, timeout: float | None = None, retry: RetryPolicy = NO_RETRY
    ) -> None:
        self.address = address or default_address()
        self.timeout = timeout
        self.retry = retry
        self._channel = grpc.insecure_channel(self.address, options=RECONNECT_OPTIONS)
        self._stub = pb_grpc.EnvironmentServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> EnvplaneClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _call(self, method: str, request: Any, timeout: float | None) -> Any:
        attempts = Attempts(self.retry, timeout or self.timeout, self.address)
        while True:
            try:
                return getattr(self._stub, method)(request, timeout=attempts.remaining())
            except grpc.RpcError as exc:
                delay = attempts.failed(exc)
            time.sleep(delay)

    def _stream(self, method: str, request: Any, timeout: float | None) -> Iterator[Any]:
        try:
            yield from getattr(self._stub, method)(request, timeout=timeout or self.timeout)
        except grpc.RpcError as exc:
            raise translate(exc, self.address) from exc

    # environments
    def create_env(
        self,
        workflow_id: str,
        node_id: str,
        version_id: str = "",
        *,
        packages: Sequence[str] = (),
        requirements: str = "",
        python_version: str = "",
        fail_if_busy: bool = False,
        exist_ok: bool = False,
        timeout: float | None = None,
    ) -> pb.Environment:
        request = build.create(
            workflow_id, node_id, version_id, packages, requirements, python_version, fail_if_busy, exist_ok
        )
        result: pb.Environment = self._call("CreateEnv", request, timeout)
        return result

    def create_env_stream(
        self,
        workflow_id: str,
        node_id: str,
        version_id: str = "",
        *,
        packages: Sequence[str] = (),
        requirements: str = "",
        python_version: str = "",
        fail_if_busy: bool = False,
        exist_ok: bool = False,
        timeout: float | None = None,
    ) -> Iterator[pb.CreateEnvProgress]:
        request = build.create(
            workflow_id, node_id, version_id, packages, requirements, python_version, fail_if_busy, exist_ok
        )
        return self._stream("CreateEnvStream", request, timeout)

    def get_env(self, workflow_id: str, node_id: str, version_id: str = "") -> pb.Environment:
        request = pb.GetEnvStatusRequest(ref=build.ref(workflow_id, node_id, version_id))
        result: pb.Environment = self._call("GetEnvStatus", request, None)
        return result

    def list_envs(
        self,
        workflow_id: str = "",
        node_id: str = "",
        status: str = "",
        *,
        page_size: int = 0,
        page_token: str = "",
    ) -> pb.ListEnvsResponse:
        request = build.list_envs(workflow_id, node_id, status, page_size, page_token)
        result: pb.ListEnvsResponse = self._call("ListEnvs", request, None)
        return result

    def iter_envs(self, workflow_id: str = "", node_id: str = "", status: str = "") -> Iterator[pb.Environment]:
        """Every matching environment, following page tokens."""
        token = ""
        while True:
            page = self.list_envs(workflow_id, node_id, status, page_token=token)
            yield from page.environments
            if not (token := page.next_page_token):
                return

    def delete_env(
        self,
        workflow_id: str,
        node_id: str,
        version_id: str = "",
        *,
        fail_if_busy: bool = False,
        timeout: float | None = None,
    ) -> pb.DeleteEnvResponse:
        request = pb.DeleteEnvRequest(ref=build.ref(workflow_id, node_id, version_id), fail_if_busy=fail_if_busy)
        result: pb.DeleteEnvResponse = self._call("DeleteEnv", request, timeout)
        return result

    def add_deps(
        self,
        workflow_id: str,
        node_id: str,
        packages: Sequence[str] = (),
        version_id: str = "",
        *,
        requirements: str = "",
        fail_if_busy: bool = False,
        timeout: float | None = None,
    ) -> pb.DepsResponse:
        request = build.deps(workflow_id, node_id, version_id, packages, requirements, fail_if_busy)
        result: pb.DepsResponse = self._call("AddDeps", request, timeout)
        return result

    def update_deps(
        self,
        workflow_id: str,
        node_id: str,
        packages: Sequence[str] = (),
        version_id: str = "",
        *,
        requirements: str = "",
        fail_if_busy: bool = False,
        timeout: float | None = None,
    ) -> pb.DepsResponse:
        request = build.deps(workflow_id, node_id, version_id, packages, requirements, fail_if_busy)
        result: pb.DepsResponse = self._call("UpdateDeps", request, timeout)
        return result

    def remove_deps(
        self,
        workflow_id: str,
        node_id: str,
        packages: Sequence[str],
        version_id: str = "",
        *,
        fail_if_busy: bool = False,
        timeout: float | None = None,
    ) -> pb.DepsResponse:
        request = build.deps(workflow_id, node_id, version_id, packages, "", fail_if_busy)
        result: pb.DepsResponse = self._call("RemoveDeps", request, timeout)
        return result

    def list_deps(self, workflow_id: str, node_id: str, version_id: str = "") -> pb.ListDepsResponse:
        request = pb.ListDepsRequest(ref=build.ref(workflow_id, node_id, version_id))
        result: pb.ListDepsResponse = self._call("ListDeps", request, None)
        return result

    def sync_env(
        self,
        workflow_id: str,
        node_id: str,
        version_id: str = "",
        *,
        fail_if_busy: bool = False,
        timeout: float | None = None,
    ) -> pb.SyncEnvResponse:
        request = pb.SyncEnvRequest(ref=build.ref(workflow_id, node_id, version_id), fail_if_busy=fail_if_busy)
        result: pb.SyncEnvResponse = self._call("SyncEnv", request, timeout)
        return result

    def export_env(self, workflow_id: str, node_id: str, version_id: str = "") -> pb.ExportEnvResponse:
        request = pb.ExportEnvRequest(ref=build.ref(workflow_id, node_id, version_id))
        result: pb.ExportEnvResponse = self._call("ExportEnv", request, None)
        return result

    def cleanup(self, idle_hours: float, *, dry_run: bool = False) -> pb.CleanupResponse:
        result: pb.CleanupResponse = self._call(
            "Cleanup", pb.CleanupRequest(idle_hours=idle_hours, dry_run=dry_run), None
        )
        return result

    # audit and events
    def get_operations(
        self,
        workflow_id: str = "",
        node_id: str = "",
        *,
        operation: str = "",
        status: str = "",
        page_size: int = 0,
        page_token: str = "",
    ) -> pb.GetOperationsResponse:
        request = build.operations(workflow_id, node_id, operation, status, page_size, page_token)
        result: pb.GetOperationsResponse = self._call("GetOperations", request, None)
        return result

    def delete_operations(
        self, workflow_id: str = "", node_id: str = "", *, before: float = 0.0
    ) -> pb.DeleteOperationsResponse:
        request = pb.DeleteOperationsRequest(workflow_id=workflow_id, node_id=node_id, before=before)
        result: pb.DeleteOperationsResponse = self._call("DeleteOperations", request, None)
        return result

    def watch_events(
        self,
        after_cursor: int = 0,
        *,
        types: Sequence[str] = (),
        follow: bool = True,
        timeout: float | None = None,
    ) -> Iterator[pb.Event]:
        request = pb.WatchEventsRequest(after_cursor=after_cursor, types=list(types), follow=follow)
        return self._stream("WatchEvents", request, timeout)
