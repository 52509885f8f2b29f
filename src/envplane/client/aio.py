"""The asyncio client: the same methods as :class:`EnvplaneClient`, awaited."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc

from envplane.client import _requests as build
from envplane.client._errors import translate
from envplane.client.address import default_address
from envplane.client.retry import NO_RETRY, RECONNECT_OPTIONS, Attempts, RetryPolicy
from envplane.v1 import environments_pb2 as pb
from envplane.v1 import environments_pb2_grpc as pb_grpc


class AsyncEnvplaneClient:
    """Typed access to ``envplane.v1.EnvironmentService``; failures raise ``envplane.errors``.

    ``timeout`` (seconds) becomes each call's gRPC deadline; the daemon waits for a busy
    environment at most that long (``fail_if_busy=True`` fails at once instead).
    ``retry`` retries unary calls that find the daemon UNAVAILABLE, within that deadline.
    """

    def __init__(
        self, address: str | None = None, *, timeout: float | None = None, retry: RetryPolicy = NO_RETRY
    ) -> None:
        self.address = address or default_address()
        self.timeout = timeout
        self.retry = retry
        self._channel = grpc.aio.insecure_channel(self.address, options=RECONNECT_OPTIONS)
        self._stub = pb_grpc.EnvironmentServiceStub(self._channel)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncEnvplaneClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def _call(self, method: str, request: Any, timeout: float | None) -> Any:
        attempts = Attempts(self.retry, timeout or self.timeout, self.address)
        while True:
            try:
                return await getattr(self._stub, method)(request, timeout=attempts.remaining())
            except grpc.RpcError as exc:
                delay = attempts.failed(exc)
            await asyncio.sleep(delay)

    async def _stream(self, method: str, request: Any, timeout: float | None) -> AsyncIterator[Any]:
        try:
            async for item in getattr(self._stub, method)(request, timeout=timeout or self.timeout):
                yield item
        except grpc.RpcError as exc:
            raise translate(exc, self.address) from exc

    # environments
    async def create_env(
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
        result: pb.Environment = await self._call("CreateEnv", request, timeout)
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
    ) -> AsyncIterator[pb.CreateEnvProgress]:
        request = build.create(
            workflow_id, node_id, version_id, packages, requirements, python_version, fail_if_busy, exist_ok
        )
        return self._stream("CreateEnvStream", request, timeout)

    async def get_env(self, workflow_id: str, node_id: str, version_id: str = "") -> pb.Environment:
        request = pb.GetEnvStatusRequest(ref=build.ref(workflow_id, node_id, version_id))
        result: pb.Environment = await self._call("GetEnvStatus", request, None)
        return result

    async def list_envs(
        self,
        workflow_id: str = "",
        node_id: str = "",
        status: str = "",
        *,
        page_size: int = 0,
        page_token: str = "",
    ) -> pb.ListEnvsResponse:
        request = build.list_envs(workflow_id, node_id, status, page_size, page_token)
        result: pb.ListEnvsResponse = await self._call("ListEnvs", request, None)
        return result

    async def iter_envs(
        self, workflow_id: str = "", node_id: str = "", status: str = ""
    ) -> AsyncIterator[pb.Environment]:
        """Every matching environment, following page tokens."""
        token = ""
        while True:
            page = await self.list_envs(workflow_id, node_id, status, page_token=token)
            for environment in page.environments:
                yield environment
            if not (token := page.next_page_token):
                return

    async def delete_env(
        self,
        workflow_id: str,
        node_id: str,
        version_id: str = "",
        *,
        fail_if_busy: bool = False,
        timeout: float | None = None,
    ) -> pb.DeleteEnvResponse:
        request = pb.DeleteEnvRequest(ref=build.ref(workflow_id, node_id, version_id), fail_if_busy=fail_if_busy)
        result: pb.DeleteEnvResponse = await self._call("DeleteEnv", request, timeout)
        return result

    async def add_deps(
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
        result: pb.DepsResponse = await self._call("AddDeps", request, timeout)
        return result

    async def update_deps(
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
        result: pb.DepsResponse = await self._call("UpdateDeps", request, timeout)
        return result

    async def remove_deps(
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
        result: pb.DepsResponse = await self._call("RemoveDeps", request, timeout)
        return result

    async def list_deps(self, workflow_id: str, node_id: str, version_id: str = "") -> pb.ListDepsResponse:
        request = pb.ListDepsRequest(ref=build.ref(workflow_id, node_id, version_id))
        result: pb.ListDepsResponse = await self._call("ListDeps", request, None)
        return result

    async def sync_env(
        self,
        workflow_id: str,
        node_id: str,
        version_id: str = "",
        *,
        fail_if_busy: bool = False,
        timeout: float | None = None,
    ) -> pb.SyncEnvResponse:
        request = pb.SyncEnvRequest(ref=build.ref(workflow_id, node_id, version_id), fail_if_busy=fail_if_busy)
        result: pb.SyncEnvResponse = await self._call("SyncEnv", request, timeout)
        return result

    async def export_env(self, workflow_id: str, node_id: str, version_id: str = "") -> pb.ExportEnvResponse:
        request = pb.ExportEnvRequest(ref=build.ref(workflow_id, node_id, version_id))
        result: pb.ExportEnvResponse = await self._call("ExportEnv", request, None)
        return result

    async def cleanup(self, idle_hours: float, *, dry_run: bool = False) -> pb.CleanupResponse:
        result: pb.CleanupResponse = await self._call(
            "Cleanup", pb.CleanupRequest(idle_hours=idle_hours, dry_run=dry_run), None
        )
        return result

    # audit and events
    async def get_operations(
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
        result: pb.GetOperationsResponse = await self._call("GetOperations", request, None)
        return result

    async def delete_operations(
        self, workflow_id: str = "", node_id: str = "", *, before: float = 0.0
    ) -> pb.DeleteOperationsResponse:
        request = pb.DeleteOperationsRequest(workflow_id=workflow_id, node_id=node_id, before=before)
        result: pb.DeleteOperationsResponse = await self._call("DeleteOperations", request, None)
        return result

    def watch_events(
        self,
        after_cursor: int = 0,
        *,
        types: Sequence[str] = (),
        follow: bool = True,
        timeout: float | None = None,
    ) -> AsyncIterator[pb.Event]:
        request = pb.WatchEventsRequest(after_cursor=after_cursor, types=list(types), follow=follow)
        return self._stream("WatchEvents", request, timeout)
