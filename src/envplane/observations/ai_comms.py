"""The earlier Nextflow plugin's Python API, kept so its code runs unchanged, made right.

``send_task_observation(data, server_address)`` returns a ``grpc.Future`` of the ``Action``,
as before; unlike the original it maps **all 18 fields** (the original dropped realtime, cpu,
vmem, read and write), treats ``None`` as "not given" (the original crashed), refuses an
unknown key or a value of the wrong type with a message naming the field, reuses **one
channel per address** (the original opened one per call and never closed it) and puts a
deadline on every call. :class:`AiCommsClient` is the closeable client for long-running plugins.

``AiServer(port=50052, log_file=..., policy=...)`` serves ``nf_ai_comms.AiActionService``
with real decisions (``service/decisions.py``): non-blocking ``start()``,
``wait_for_termination()``, ``stop(grace)``; usable inside a Ray actor. ``action_details`` is
the decision as JSON.
"""

from __future__ import annotations

import atexit
import datetime
import json
import logging
import threading
import uuid
from collections.abc import Mapping
from concurrent import futures
from typing import TYPE_CHECKING, Any

import grpc

from envplane.errors import EnvplaneError, InvalidArgument
from envplane.nf_ai_comms import nf_ai_comms_pb2 as pb
from envplane.nf_ai_comms import nf_ai_comms_pb2_grpc as pb_grpc

if TYPE_CHECKING:  # the server's side (numpy and the policies) loads only with AiServer
    from envplane.observations.service.decisions import Decider, Decision, Observation
    from envplane.observations.service.replay import Policy

DEFAULT_PORT = 50052
DEFAULT_TIMEOUT = 10.0  # seconds: the deadline of one observation's call
_INTEGERS = {
    "task_id_num", "exit_code", "duration_ms", "realtime_ms",
    "peak_rss_bytes", "peak_vmem_bytes", "read_bytes", "write_bytes",
}  # fmt: skip
_FIELDS = [f.name for f in pb.TaskObservation.DESCRIPTOR.fields]


def observation_message(data: Mapping[str, Any]) -> pb.TaskObservation:
    """The plugin's dict -> a ``TaskObservation``: every field, ``None`` as unset, defaults
    for ``event_id`` (a new UUID) and ``timestamp_iso`` (now, UTC), a clear error otherwise."""
    if not isinstance(data, Mapping):
        raise InvalidArgument(f"an observation is a dict of TaskObservation fields, got {type(data).__name__}")
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise InvalidArgument(
            f"unknown observation field(s) {', '.join(map(repr, unknown))}; the fields: {', '.join(_FIELDS)}"
        )
    values: dict[str, Any] = {}
    for name, value in data.items():
        if value is None:
            continue
        if name in _INTEGERS:
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise InvalidArgument(
                    f"observation field {name!r} must be an integer, got {type(value).__name__} {value!r}"
                )
            try:
                number = float(value)
            except ValueError:
                raise InvalidArgument(f"observation field {name!r} must be an integer, got {value!r}") from None
            if number != int(number):
                raise InvalidArgument(f"observation field {name!r} must be a whole number, got {value!r}")
            values[name] = int(number)
        elif name == "cpu_percent" and isinstance(value, (int, float)) and not isinstance(value, bool):
            values[name] = f"{value}%"
        elif isinstance(value, str):
            values[name] = value
        else:
            raise InvalidArgument(f"observation field {name!r} must be a string, got {type(value).__name__} {value!r}")
    values.setdefault("event_id", str(uuid.uuid4()))
    values.setdefault("timestamp_iso", datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z"))
    try:
        return pb.TaskObservation(**values)
    except (ValueError, TypeError) as exc:  # an int32 exit code out of range, say
        raise InvalidArgument(f"bad observation: {exc}") from None


class AiCommsClient:
    """One channel to one server, for a plugin that sends many observations; close it (or use
    it as a context manager) when the plugin stops."""

    def __init__(self, server_address: str = f"localhost:{DEFAULT_PORT}", *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.address = server_address
        self.timeout = timeout
        self._channel = grpc.insecure_channel(server_address)
        self._stub = pb_grpc.AiActionServiceStub(self._channel)

    def send(self, data: Mapping[str, Any], *, timeout: float | None = None) -> grpc.Future:
        """The ``Action`` for ``data``, as a future (``.result()``, ``.add_done_callback``)."""
        message = observation_message(data)
        return self._stub.SendTaskObservation.future(message, timeout=timeout or self.timeout)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> AiCommsClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


_clients: dict[str, AiCommsClient] = {}
_clients_lock = threading.Lock()


def _client(address: str) -> AiCommsClient:
    with _clients_lock:
        client = _clients.get(address)
        if client is None:
            client = _clients[address] = AiCommsClient(address)
        return client


@atexit.register
def close_all() -> None:
    """Close the channels ``send_task_observation`` opened (also run at interpreter exit)."""
    with _clients_lock:
        for client in _clients.values():
            client.close()
        _clients.clear()


def send_task_observation(
    observation_data: Mapping[str, Any],
    server_address: str = f"localhost:{DEFAULT_PORT}",
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> grpc.Future:
    """The original's call: the ``Action`` as a ``grpc.Future``. One channel per address."""
    return _client(server_address).send(observation_data, timeout=timeout)


def observation_of(request: pb.TaskObservation, source: str = "nf_ai_comms") -> Observation:
    """The original's ``TaskObservation`` as envplane's observation (all 18 fields kept)."""
    from envplane.observations.service.decisions import Observation

    try:
        cpu = float(request.cpu_percent.strip().rstrip("%") or 0)
    except ValueError:
        raise InvalidArgument(f"cpu_percent {request.cpu_percent!r} is not a percentage like '63.5%'") from None
    return Observation(
        event_id=request.event_id,
        event_type=request.event_type,
        pipeline=request.pipeline_name,
        process=request.process_name,
        task_id=request.task_id_num,
        status=request.status,
        exit_code=request.exit_code,
        realtime_ms=request.realtime_ms,
        peak_rss=request.peak_rss_bytes,
        read_bytes=request.read_bytes,
        duration_ms=request.duration_ms,
        cpu_percent=cpu,
        peak_vmem=request.peak_vmem_bytes,
        write_bytes=request.write_bytes,
        task_hash=request.task_hash,
        task_name=request.task_name,
        source=source,
    )


def action_of(request: pb.TaskObservation, decision: Decision, action_id: str) -> pb.Action:
    return pb.Action(
        observation_event_id=request.event_id,
        action_id=action_id,
        action_details=json.dumps(decision.details()),
        success=True,
        message=decision.reason,
    )


class _Servicer(pb_grpc.AiActionServiceServicer):
    def __init__(self, decider: Decider, log: logging.Logger) -> None:
        self.decider = decider
        self.log = log

    def SendTaskObservation(self, request: pb.TaskObservation, context: grpc.ServicerContext) -> pb.Action:
        try:
            decision = self.decider.decide(observation_of(request))
        except EnvplaneError as exc:
            self.log.warning("refused observation %s: %s", request.event_id, exc.message)
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, exc.message)
        self.log.info(
            "observation %s (%s %s): %s", request.event_id, request.process_name, request.status, decision.kind
        )
        return action_of(request, decision, str(uuid.uuid4()))


class AiServer:
    """The original ``AiServer``, with decisions: ``start()`` returns at once."""

    def __init__(
        self,
        port: int = DEFAULT_PORT,
        log_file: str = "/tmp/ai_server.log",
        policy: Policy | None = None,
        *,
        host: str = "127.0.0.1",
        max_workers: int = 8,
    ) -> None:
        from envplane.observations.service.decisions import Decider

        self.log_file = log_file
        self.decider = Decider(policy)
        self.log = logging.getLogger(f"envplane.ai_server.{id(self)}")
        self.log.setLevel(logging.INFO)
        self.log.propagate = False
        self._handler = logging.FileHandler(log_file)
        self._handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        self.log.addHandler(self._handler)
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers))
        pb_grpc.add_AiActionServiceServicer_to_server(_Servicer(self.decider, self.log), self._server)
        self.port = self._server.add_insecure_port(f"{host}:{port}")
        if not self.port:
            raise InvalidArgument(f"cannot listen on {host}:{port} (taken?)")

    def start(self) -> None:
        self._server.start()
        self.log.info("AI server listening on port %d", self.port)

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        return bool(self._server.wait_for_termination(timeout))

    def stop(self, grace: float | None = 0) -> None:
        self._server.stop(grace).wait()
        self.log.info("AI server stopped")
        self.log.removeHandler(self._handler)
        self._handler.close()
