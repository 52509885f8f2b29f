"""What a pool is made of (:class:`PoolConfig`), checked once, with one clear error per problem.

The same definition serves the in-process :class:`~envplane.workers.Pool`, the daemon's
stored pools and both faces; its JSON form (:meth:`PoolConfig.to_json`) is what the
daemon stores, so a restarted daemon brings the pool back exactly as declared. Defaults follow
the peers (snakepit, Celery, loky) where they agree: one BLAS thread per worker, a queue of
1000, a 60 s wait in the queue, sessions kept an hour.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from envplane.errors import InvalidArgument, echo

TRANSPORTS = ("pipe", "grpc")
AFFINITIES = ("hint", "strict", "strict_fail_fast")
POOL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
COMMAND_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "BLIS_NUM_THREADS",
)
MAX_WORKERS = 256


def check_pool_name(name: str) -> str:
    if not POOL_NAME.match(name or ""):
        raise InvalidArgument(
            f"pool name {echo(name)} is not valid: 1-63 letters, digits, '_', '.', '-', starting with a letter or digit"
        )
    return name


def check_command_name(name: str) -> str:
    if not COMMAND_NAME.match(name or ""):
        raise InvalidArgument(f"command {echo(name)} is not a Python function name")
    return name


@dataclass(frozen=True)
class PoolConfig:
    """A pool's definition. Sizes count worker processes; seconds are floats; 0 = off."""

    handler: str
    min_size: int = 1
    max_size: int = 0  # 0: the same as min_size (no growth on demand)
    concurrency: int = 1  # calls one worker runs at once (threads or asyncio tasks)
    transport: str = "pipe"
    init: str = "init"  # a handler function run once per worker before it is ready; "" = none
    init_args: Any = None  # its keyword (object) or positional (array) arguments
    affinity: str = "hint"
    session_ttl: float = 3600.0
    max_sessions: int = 10_000
    max_queue: int = 1000
    queue_timeout: float = 60.0
    cancel_grace: float = 2.0  # after a cancel, how long the command has to stop before a recycle
    startup_timeout: float = 60.0
    heartbeat_interval: float = 1.0
    heartbeat_timeout: float = 10.0
    max_calls: int = 0  # recycle a worker after this many calls
    ttl: float = 0.0  # ... or after this many seconds of life
    max_rss: int = 0  # ... or once its RSS passed this many bytes (between calls)
    memory_limit: int = 0  # bytes; a call past it fails with WorkerOutOfMemory, the worker is replaced
    memory_cgroup: bool = True  # enforce it with a memory cgroup where the host allows (else the watchdog)
    retry_on_oom: bool = False
    oom_growth: float = 2.0
    oom_cap: int = 0  # the largest grown limit (0: 4 × memory_limit)
    idempotent: tuple[str, ...] = ()  # commands retried once on another worker after a crash
    env: Mapping[str, str] = field(default_factory=dict)
    threads: int = 1  # OMP/OpenBLAS/MKL/numexpr threads per worker
    cwd: str = ""
    idle_timeout: float = 60.0  # workers above min_size stop after this long idle
    restart_backoff: float = 0.5
    max_restart_backoff: float = 30.0
    add_grpcio: bool = False  # daemon pools: add grpcio to the env when the transport needs it

    def __post_init__(self) -> None:
        problems = list(_problems(self))
        if problems:
            raise InvalidArgument("invalid pool definition: " + "; ".join(problems))
        if not self.max_size:
            object.__setattr__(self, "max_size", self.min_size)
        object.__setattr__(self, "idempotent", tuple(self.idempotent))
        object.__setattr__(self, "env", dict(self.env))

    @property
    def oom_ceiling(self) -> int:
        return self.oom_cap or 4 * self.memory_limit

    def replace(self, **changes: Any) -> PoolConfig:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["idempotent"] = list(self.idempotent)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PoolConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidArgument(f"unknown pool option(s): {', '.join(unknown)}")
        values = dict(data)
        if "idempotent" in values:
            values["idempotent"] = tuple(values["idempotent"])
        return cls(**values)


def _problems(config: PoolConfig) -> Iterator[str]:
    c = config
    if not isinstance(c.handler, str) or not c.handler.strip():
        yield "handler is empty: name a module importable in the env, a .py file or a package folder"
    for name in ("min_size", "max_size", "concurrency", "max_sessions", "max_queue", "max_calls", "threads"):
        value = getattr(c, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            yield f"{name} must be a whole number >= 0, got {echo(value)}"
    if isinstance(c.min_size, int) and c.min_size < 1:
        yield "min_size must be at least 1"
    if isinstance(c.max_size, int) and c.max_size and isinstance(c.min_size, int) and c.max_size < c.min_size:
        yield f"max_size ({c.max_size}) is below min_size ({c.min_size})"
    if isinstance(c.max_size, int) and max(c.max_size, c.min_size if isinstance(c.min_size, int) else 0) > MAX_WORKERS:
        yield f"a pool has at most {MAX_WORKERS} workers"
    if isinstance(c.concurrency, int) and c.concurrency < 1:
        yield "concurrency must be at least 1"
    if isinstance(c.threads, int) and c.threads < 1:
        yield "threads must be at least 1"
    if c.transport not in TRANSPORTS:
        yield f"transport must be one of {', '.join(TRANSPORTS)}, got {echo(c.transport)}"
    if c.affinity not in AFFINITIES:
        yield f"affinity must be one of {', '.join(AFFINITIES)}, got {echo(c.affinity)}"
    if c.init and not COMMAND_NAME.match(c.init):
        yield f"init {echo(c.init)} is not a Python function name"
    if c.init_args is not None and not isinstance(c.init_args, (dict, list)):
        yield "init_args must be an object (keyword arguments) or an array (positional ones)"
    seconds = (
        "session_ttl",
        "queue_timeout",
        "cancel_grace",
        "startup_timeout",
        "heartbeat_interval",
        "heartbeat_timeout",
        "ttl",
        "idle_timeout",
        "restart_backoff",
        "max_restart_backoff",
    )
    for name in seconds:
        value = getattr(c, name)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
            yield f"{name} must be a number of seconds >= 0, got {echo(value)}"
    for name in ("startup_timeout", "heartbeat_interval", "heartbeat_timeout", "queue_timeout"):
        value = getattr(c, name)
        if isinstance(value, (int, float)) and value == 0:
            yield f"{name} must be above 0"
    if (
        isinstance(c.heartbeat_timeout, (int, float))
        and isinstance(c.heartbeat_interval, (int, float))
        and c.heartbeat_timeout < 2 * c.heartbeat_interval
    ):
        yield "heartbeat_timeout must be at least twice heartbeat_interval"
    for name in ("max_rss", "memory_limit", "oom_cap"):
        value = getattr(c, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            yield f"{name} must be a number of bytes >= 0, got {echo(value)}"
        elif value and value < 16 * 2**20:
            yield f"{name} of {value} bytes is below the 16 MiB an interpreter needs"
    if not isinstance(c.oom_growth, (int, float)) or not c.oom_growth > 1 or not math.isfinite(c.oom_growth):
        yield f"oom_growth must be a factor above 1, got {echo(c.oom_growth)}"
    if c.retry_on_oom and not c.memory_limit:
        yield "retry_on_oom needs a memory_limit"
    if isinstance(c.oom_cap, int) and c.oom_cap and isinstance(c.memory_limit, int) and c.oom_cap < c.memory_limit:
        yield "oom_cap is below memory_limit"
    for name in c.idempotent:
        if not isinstance(name, str) or not COMMAND_NAME.match(name):
            yield f"idempotent lists {echo(name)}, which is not a command name"
    if not isinstance(c.env, Mapping):
        yield "env must map variable names to strings"
    else:
        for key, value in c.env.items():
            if not isinstance(key, str) or not ENV_NAME.match(key):
                yield f"env variable name {echo(key)} is not valid"
            elif not isinstance(value, str) or "\0" in value:
                yield f"env variable {key} must be a string without NUL"
