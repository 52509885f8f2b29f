"""The workers capability's values ↔ ``envplane.v1`` messages (both faces use these)."""

from __future__ import annotations

import json
import math
from typing import Any

from envplane.errors import CommandError, InvalidArgument
from envplane.v1 import workers_pb2 as pb
from envplane.workers.service.config import PoolConfig
from envplane.workers.service.logs import LogLine
from envplane.workers.service.worker_service import PoolView

# PoolSpec field -> PoolConfig field, where the names differ (0 / "" in the message = default).
_RENAMED = {
    "session_ttl_seconds": "session_ttl",
    "queue_timeout_seconds": "queue_timeout",
    "cancel_grace_seconds": "cancel_grace",
    "startup_timeout_seconds": "startup_timeout",
    "heartbeat_interval_seconds": "heartbeat_interval",
    "heartbeat_timeout_seconds": "heartbeat_timeout",
    "ttl_seconds": "ttl",
    "max_rss_bytes": "max_rss",
    "memory_limit_bytes": "memory_limit",
    "oom_cap_bytes": "oom_cap",
    "idle_timeout_seconds": "idle_timeout",
    "restart_backoff_seconds": "restart_backoff",
    "max_restart_backoff_seconds": "max_restart_backoff",
    "variables": "env",
}
_SCALARS = (
    "handler", "min_size", "max_size", "concurrency", "transport", "affinity", "max_sessions", "max_queue",
    "max_calls", "retry_on_oom", "oom_growth", "threads", "cwd", "add_grpcio",
)  # fmt: skip


def env_of(spec: pb.PoolSpec) -> tuple[str, str, str]:
    if not spec.HasField("env") or not spec.env.workflow_id or not spec.env.node_id:
        raise InvalidArgument("spec.env is required: the workflow_id and node_id of the environment to run in")
    return (spec.env.workflow_id, spec.env.node_id, spec.env.version_id)


def config_of(spec: pb.PoolSpec) -> PoolConfig:
    """A PoolConfig from the message: unset (zero) fields take the defaults."""
    values: dict[str, Any] = {}
    for name in _SCALARS:
        value = getattr(spec, name)
        if value:
            values[name] = value
    for field, name in _RENAMED.items():
        value = getattr(spec, field)
        if field == "variables":
            value = dict(value)
        if value:
            values[name] = value
    for name, value in values.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidArgument(f"spec.{name} must be a finite number")
    if spec.idempotent:
        values["idempotent"] = tuple(spec.idempotent)
    if spec.no_memory_cgroup:
        values["memory_cgroup"] = False
    if spec.no_init:
        values["init"] = ""
    elif spec.init:
        values["init"] = spec.init
    if spec.init_args_json:
        try:
            values["init_args"] = json.loads(spec.init_args_json)
        except ValueError as exc:
            raise InvalidArgument(f"spec.init_args_json is not JSON: {exc}") from None
    return PoolConfig(**values)


def spec_of(config: PoolConfig, env: tuple[str, str, str]) -> pb.PoolSpec:
    """The stored definition as a message, defaults filled in."""
    spec = pb.PoolSpec(
        handler=config.handler,
        min_size=config.min_size,
        max_size=config.max_size,
        concurrency=config.concurrency,
        transport=config.transport,
        init=config.init,
        no_init=not config.init,
        init_args_json=json.dumps(config.init_args) if config.init_args is not None else "",
        affinity=config.affinity,
        max_sessions=config.max_sessions,
        max_queue=config.max_queue,
        max_calls=config.max_calls,
        retry_on_oom=config.retry_on_oom,
        oom_growth=config.oom_growth,
        idempotent=list(config.idempotent),
        threads=config.threads,
        cwd=config.cwd,
        add_grpcio=config.add_grpcio,
        no_memory_cgroup=not config.memory_cgroup,
    )
    for field, name in _RENAMED.items():
        if field == "variables":
            spec.variables.update(config.env)
        else:
            setattr(spec, field, getattr(config, name))
    spec.env.workflow_id, spec.env.node_id, spec.env.version_id = env
    return spec


def pool(view: PoolView) -> pb.Pool:
    info = view.info
    message = pb.Pool(
        name=view.name,
        spec=spec_of(info.config, (view.workflow_id, view.node_id, view.version_id)),
        state=info.state.value,
        error=info.error,
        error_detail=info.error_detail,
        queued=info.queued,
        sessions=info.sessions,
        python=info.python,
        created_at=view.created_at,
        memory_enforcement=info.memory_enforcement,
    )
    for w in info.workers:
        message.workers.append(
            pb.Worker(
                slot=w.slot,
                pid=w.pid,
                state=w.state,
                calls_served=w.calls_served,
                current_command=w.current_command,
                current_seconds=w.current_seconds,
                rss_bytes=w.rss,
                peak_rss_bytes=w.peak_rss,
                uptime_seconds=w.uptime,
                restarts=w.restarts,
                last_exit=w.last_exit,
                memory_limit_bytes=w.memory_limit,
            )
        )
    for name in sorted(info.commands):
        command = info.commands[name]
        message.commands.append(
            pb.Command(name=name, kind=command["kind"], session=command["session"], doc=command.get("doc", ""))
        )
    return message


def command_error(error: CommandError) -> pb.CommandError:
    return pb.CommandError(
        type=error.error_type, module=error.error_module, message=error.error_message, traceback=error.traceback
    )


def log_line(line: LogLine) -> pb.LogLine:
    return pb.LogLine(worker=line.worker, pid=line.pid, stream=line.stream, text=line.text, time=line.time)
