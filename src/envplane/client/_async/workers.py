"""``client.workers``: every ``envplane.v1.WorkerService`` RPC as a method.

Values are plain Python: ``execute`` sends ``args`` (a dict: keyword arguments; a list:
positional ones) as JSON in which bytes survive, and returns the command's value; a command
that raised raises :class:`~envplane.errors.CommandError` with its type and traceback.
``use_pickle=True`` sends and receives pickles instead (any Python object; the daemon passes
them through unopened). ``timeout`` (seconds) bounds one call, queue included.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import AsyncIterator
from typing import Any

from envplane.client._async.transport import AsyncTransport
from envplane.errors import CommandError, InvalidArgument
from envplane.v1 import workers_pb2 as pb
from envplane.v1 import workers_pb2_grpc as pb_grpc
from envplane.workers.service.bootstrap import dumps_value, loads_value


def _spec(workflow_id: str, node_id: str, version_id: str, handler: str, options: dict[str, Any]) -> pb.PoolSpec:
    init_args = options.pop("init_args", None)
    try:
        spec = pb.PoolSpec(handler=handler, **options)
    except (ValueError, TypeError) as exc:
        fields = ", ".join(f.name for f in pb.PoolSpec.DESCRIPTOR.fields if f.name not in ("env", "handler"))
        raise InvalidArgument(f"bad pool option: {exc} (options: {fields}, init_args)") from None
    if init_args is not None:
        spec.init_args_json = json.dumps(init_args)
    spec.env.workflow_id, spec.env.node_id, spec.env.version_id = workflow_id, node_id, version_id
    return spec


def _request(
    pool: str, command: str, args: Any, timeout: float | None, session_id: str, idempotent: bool, use_pickle: bool
) -> pb.ExecuteRequest:
    request = pb.ExecuteRequest(
        pool=pool, command=command, timeout_seconds=timeout or 0, session_id=session_id, idempotent=idempotent
    )
    if use_pickle:
        request.args_pickle = pickle.dumps(args, protocol=4)
    elif args is not None:
        request.args_json = dumps_value(args)
    return request


def _raise(error: pb.CommandError, command: str) -> None:
    raise CommandError.raised(command, error.type, error.message, module=error.module, traceback=error.traceback)


def _deadline(timeout: float | None) -> float | None:
    """The transport's deadline: a little over the call's own timeout, so the daemon's
    DEADLINE_EXCEEDED (which names where the time went) arrives first."""
    return None if not timeout else timeout + 5.0


class AsyncWorkers:
    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport
        self._stub = pb_grpc.WorkerServiceStub(transport.channel)

    async def create_pool(
        self,
        name: str,
        workflow_id: str,
        node_id: str,
        handler: str,
        *,
        version_id: str = "",
        wait_ready: bool = True,
        exist_ok: bool = False,
        timeout: float | None = None,
        **options: Any,
    ) -> pb.Pool:
        """A pool of workers running ``handler`` in the env; ``options`` are PoolSpec fields
        (``min_size=2``, ``transport="grpc"``, ``memory_limit_bytes=…``) plus ``init_args``."""
        spec = _spec(workflow_id, node_id, version_id, handler, dict(options))
        request = pb.CreatePoolRequest(name=name, spec=spec, wait_ready=wait_ready, exist_ok=exist_ok)
        result: pb.Pool = await self._t.call(self._stub.CreatePool, request, timeout)
        return result

    async def delete_pool(
        self, name: str, *, grace: float = 0.0, timeout: float | None = None
    ) -> pb.DeletePoolResponse:
        request = pb.DeletePoolRequest(name=name, grace_seconds=grace)
        result: pb.DeletePoolResponse = await self._t.call(self._stub.DeletePool, request, timeout)
        return result

    async def scale(self, name: str, min_size: int, max_size: int = 0) -> pb.Pool:
        request = pb.ScalePoolRequest(name=name, min_size=min_size, max_size=max_size)
        result: pb.Pool = await self._t.call(self._stub.ScalePool, request, None)
        return result

    async def list_pools(self) -> list[pb.Pool]:
        result: pb.ListPoolsResponse = await self._t.call(self._stub.ListPools, pb.ListPoolsRequest(), None)
        return list(result.pools)

    async def get_pool(self, name: str, *, wait_ready: float = 0.0) -> pb.Pool:
        request = pb.GetPoolRequest(name=name, wait_ready_seconds=wait_ready)
        result: pb.Pool = await self._t.call(self._stub.GetPool, request, (wait_ready + 10) if wait_ready else None)
        return result

    async def execute(
        self,
        pool: str,
        command: str,
        args: Any = None,
        *,
        timeout: float | None = None,
        session_id: str = "",
        idempotent: bool = False,
        use_pickle: bool = False,
    ) -> Any:
        """The command's value (CommandError if it raised)."""
        request = _request(pool, command, args, timeout, session_id, idempotent, use_pickle)
        reply: pb.ExecuteResponse = await self._t.call(self._stub.Execute, request, _deadline(timeout))
        outcome = reply.WhichOneof("outcome")
        if outcome == "error":
            _raise(reply.error, command)
        if outcome == "result_pickle":
            return pickle.loads(reply.result_pickle)
        return loads_value(reply.result_json) if reply.result_json else None

    async def execute_stream(
        self,
        pool: str,
        command: str,
        args: Any = None,
        *,
        timeout: float | None = None,
        session_id: str = "",
        use_pickle: bool = False,
    ) -> AsyncIterator[Any]:
        """The chunks a generator command yields, as it yields them; leaving early cancels it."""
        request = _request(pool, command, args, timeout, session_id, False, use_pickle)
        async for item in self._t.stream(self._stub.ExecuteStream, request, _deadline(timeout)):
            kind = item.WhichOneof("item")
            if kind == "chunk_json":
                yield loads_value(item.chunk_json)
            elif kind == "chunk_pickle":
                yield pickle.loads(item.chunk_pickle)
            elif kind == "error":
                _raise(item.error, command)
            else:
                return

    def logs(
        self, pool: str, *, worker: int = -1, tail: int = 100, follow: bool = False, timeout: float | None = None
    ) -> AsyncIterator[pb.LogLine]:
        """The workers' stdout/stderr: the last ``tail`` lines, then (``follow``) new ones."""
        request = pb.StreamWorkerLogsRequest(pool=pool, worker=worker, tail=tail, follow=follow)
        return self._t.stream(self._stub.StreamWorkerLogs, request, timeout)

    async def end_session(self, pool: str, session_id: str) -> bool:
        request = pb.EndSessionRequest(pool=pool, session_id=session_id)
        result: pb.EndSessionResponse = await self._t.call(self._stub.EndSession, request, None)
        return result.ended
