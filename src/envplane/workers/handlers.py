"""One function per ``envplane.v1.WorkerService`` RPC: request message -> service call -> reply.
Both faces call these, so gRPC and REST take the same fields and give the same answers.

Values: ``args_json`` is JSON text in which bytes are ``{"$bytes": "<base64>"}``; ``args_pickle``
passes through to the worker unopened, and the reply is then pickle bytes too. A command that
raised answers with ``error`` (its type, message and traceback), not with an error status.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncGenerator
from typing import Any

from envplane.errors import CommandError, InvalidArgument
from envplane.v1 import workers_pb2 as pb
from envplane.workers import messages
from envplane.workers.service.bootstrap import dumps_value, loads_value
from envplane.workers.service.channel import Pickled
from envplane.workers.service.worker_service import WorkerService


def _seconds(name: str, value: float) -> float | None:
    if not math.isfinite(value) or value < 0:
        raise InvalidArgument(f"{name} must be a number of seconds >= 0, got {value}")
    return value or None


def _args(request: pb.ExecuteRequest) -> Any:
    if request.args_pickle:
        if request.args_json:
            raise InvalidArgument("give args_json or args_pickle, not both")
        return Pickled(request.args_pickle)
    if not request.args_json:
        return None
    try:
        return loads_value(request.args_json)
    except (ValueError, TypeError) as exc:
        raise InvalidArgument(f"args_json is not JSON: {exc}") from None


async def create_pool(service: WorkerService, request: pb.CreatePoolRequest, *, deadline: float | None) -> pb.Pool:
    env = messages.env_of(request.spec)
    config = messages.config_of(request.spec)
    view = await service.create(
        request.name, env, config, wait_ready=request.wait_ready, exist_ok=request.exist_ok, deadline=deadline
    )
    return messages.pool(view)


async def delete_pool(service: WorkerService, request: pb.DeletePoolRequest) -> pb.DeletePoolResponse:
    grace = _seconds("grace_seconds", request.grace_seconds)
    view, operation_id = await service.delete(request.name, grace=grace)
    return pb.DeletePoolResponse(pool=messages.pool(view), operation_id=operation_id)


async def scale_pool(service: WorkerService, request: pb.ScalePoolRequest) -> pb.Pool:
    return messages.pool(await service.scale(request.name, request.min_size, request.max_size))


async def list_pools(service: WorkerService, request: pb.ListPoolsRequest) -> pb.ListPoolsResponse:
    return pb.ListPoolsResponse(pools=[messages.pool(view) for view in service.list_pools()])


async def get_pool(service: WorkerService, request: pb.GetPoolRequest) -> pb.Pool:
    wait = _seconds("wait_ready_seconds", request.wait_ready_seconds) or 0
    return messages.pool(await service.get(request.name, wait_ready=wait))


async def execute(service: WorkerService, request: pb.ExecuteRequest, *, deadline: float | None) -> pb.ExecuteResponse:
    started = time.monotonic()
    timeout = _seconds("timeout_seconds", request.timeout_seconds)
    try:
        value = await service.execute(
            request.pool,
            request.command,
            _args(request),
            timeout=timeout,
            session=request.session_id or None,
            idempotent=request.idempotent,
            deadline=deadline,
        )
    except CommandError as exc:
        return pb.ExecuteResponse(error=messages.command_error(exc), seconds=time.monotonic() - started)
    if isinstance(value, Pickled):
        return pb.ExecuteResponse(result_pickle=value.data, seconds=time.monotonic() - started)
    return pb.ExecuteResponse(result_json=dumps_value(value), seconds=time.monotonic() - started)


async def execute_stream(
    service: WorkerService, request: pb.ExecuteRequest, *, deadline: float | None
) -> AsyncGenerator[pb.ExecuteStreamResponse, None]:
    """Each chunk as the worker yields it, then ``end`` (or ``error`` if the command raised)."""
    started = time.monotonic()
    timeout = _seconds("timeout_seconds", request.timeout_seconds)
    if request.idempotent:
        raise InvalidArgument("a stream is never retried: idempotent applies to Execute only")
    stream = service.execute_stream(
        request.pool,
        request.command,
        _args(request),
        timeout=timeout,
        session=request.session_id or None,
        deadline=deadline,
    )
    chunks = 0
    try:
        async for value in stream:
            chunks += 1
            if isinstance(value, Pickled):
                yield pb.ExecuteStreamResponse(chunk_pickle=value.data)
            else:
                yield pb.ExecuteStreamResponse(chunk_json=dumps_value(value))
    except CommandError as exc:
        yield pb.ExecuteStreamResponse(error=messages.command_error(exc))
        return
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    yield pb.ExecuteStreamResponse(end=pb.StreamEnd(chunks=chunks, seconds=time.monotonic() - started))


async def stream_worker_logs(
    service: WorkerService, request: pb.StreamWorkerLogsRequest
) -> AsyncGenerator[pb.LogLine, None]:
    if request.tail < 0:
        raise InvalidArgument(f"tail must be >= 0, got {request.tail}")
    if request.worker < -1:
        raise InvalidArgument(f"worker must be a slot (>= 0) or -1 for all, got {request.worker}")
    lines = service.logs(
        request.pool,
        worker=None if request.worker < 0 else request.worker,
        tail=request.tail or 100,
        follow=request.follow,
    )
    try:
        async for line in lines:
            yield messages.log_line(line)
    finally:
        await lines.aclose()  # type: ignore[attr-defined]


async def end_session(service: WorkerService, request: pb.EndSessionRequest) -> pb.EndSessionResponse:
    service.pool(request.pool)  # NOT_FOUND first
    return pb.EndSessionResponse(ended=await service.end_session(request.pool, request.session_id))
