"""What a backing service is: :class:`ServiceDef`, parsed from TOML with one clear message per
problem.

The shape users and tools rely on (durations as ``"500ms"``, ``"2s"``, ``"1m"``, or a number of
seconds)::

    [services.api]
    runtime = "process"
    command = ["python3", "-m", "http.server", "8081", "--bind", "127.0.0.1"]
    ports = [8081]
    depends_on = { redis = "healthy" }
    restart = { policy = "on-failure", backoff = "1s", max_backoff = "30s", max_restarts = 5 }
    [services.api.probe]
    kind = "http"
    url = "http://127.0.0.1:8081/"
    interval = "1s"

A table may name an embedded service (``[services.redis]``): its fields then override the
embedded definition's, nested tables (``probe``, ``restart``) field by field. Parsing never
stops at the first problem: every problem of every service is collected, so one run of a bad
file shows all that is wrong with it (``registry.py`` adds the problems between services:
unknown dependencies, cycles, port clashes).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import signal
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

RUNTIMES = ("process", "docker")
CONDITIONS = ("started", "healthy", "completed_successfully")
PROBES = ("tcp", "http", "exec", "redis", "postgres")
RESTART_POLICIES = ("no", "on-failure", "always")
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: Any, where: str, problems: list[str]) -> float:
    """``"500ms"`` / ``"2s"`` / ``"1m"`` / ``"1h"`` / a number of seconds -> seconds."""
    if isinstance(value, bool):
        problems.append(f'{where} must be a duration such as "500ms" or "2s", got {value!r}')
        return 0.0
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION.match(value) if isinstance(value, str) else None
        if not match:
            problems.append(f'{where} must be a duration such as "500ms" or "2s", got {value!r}')
            return 0.0
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if not math.isfinite(seconds) or seconds < 0:
        problems.append(f"{where} must be a duration >= 0, got {value!r}")
        return 0.0
    return seconds


@dataclass(frozen=True)
class Port:
    """A port the service listens on: ``host:port``; for Docker, published from ``container``."""

    port: int
    host: str = "127.0.0.1"
    container: int = 0  # docker: the container's port (0: the same as ``port``)

    def __str__(self) -> str:
        inner = f"->{self.container}" if self.container and self.container != self.port else ""
        return f"{self.host}:{self.port}{inner}"


@dataclass(frozen=True)
class Probe:
    """How health is checked. ``retries`` failures in a row make the service unhealthy;
    failures during ``start_period`` do not count."""

    kind: str
    host: str = "127.0.0.1"
    port: int = 0  # tcp, redis, postgres (0: the service's first port)
    url: str = ""  # http
    status: tuple[int, ...] = ()  # http: accepted codes (empty: 200-399)
    command: tuple[str, ...] = ()  # exec: exit code 0 is healthy
    user: str = "postgres"  # postgres
    database: str = "postgres"  # postgres
    interval: float = 1.0
    timeout: float = 1.0
    retries: int = 3
    start_period: float = 0.0


@dataclass(frozen=True)
class Restart:
    """When a service that exits is started again: backoff doubling per restart in a row, capped
    at ``max_backoff``, each delay spread by ±``jitter`` (a fraction) so services that fail
    together do not come back together. ``max_restarts`` 0 = no limit."""

    policy: str = "no"
    backoff: float = 1.0
    max_backoff: float = 30.0
    jitter: float = 0.2
    max_restarts: int = 0


@dataclass(frozen=True)
class ServiceDef:
    name: str
    runtime: str = "process"
    command: tuple[str, ...] = ()
    image: str = ""
    ports: tuple[Port, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    volumes: tuple[str, ...] = ()  # docker: "host_path:container_path[:ro]"
    workdir: str = ""  # process: default the service's own folder (its ${SERVICE_DIR})
    user: str = ""  # process, under a root daemon: run as this user ("postgres": it refuses root); else ignored
    network: str = ""  # docker: "host", or a network name (default: the engine's bridge, ports published)
    depends_on: Mapping[str, str] = field(default_factory=dict)  # name -> condition
    probe: Probe | None = None
    restart: Restart = field(default_factory=Restart)
    stop_signal: str = "SIGTERM"
    stop_grace: float = 10.0
    required: bool = True  # a failed required dependency skips its dependents
    description: str = ""
    embedded: bool = False  # one of envplane's own definitions (possibly overridden)


_FIELDS = {f.name for f in dataclasses.fields(ServiceDef)} - {"name", "embedded"}
_PROBE_FIELDS = {f.name for f in dataclasses.fields(Probe)}
_RESTART_FIELDS = {f.name for f in dataclasses.fields(Restart)}


def _unknown(where: str, given: Mapping[str, Any], known: set[str]) -> Iterator[str]:
    for key in sorted(set(given) - known):
        close = difflib.get_close_matches(key, sorted(known), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        yield f"{where}: unknown field {key!r}{hint}"


def _strings(value: Any, where: str, problems: list[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        problems.append(f"{where} must be a list of strings (one per argument), not one string: {value!r}")
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.append(f"{where} must be a list of strings, got {value!r}")
        return ()
    return tuple(value)


def _port_number(value: Any, where: str, problems: list[str]) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        problems.append(f"{where} must be a port number 1-65535, got {value!r}")
        return 0
    return value


def _ports(value: Any, where: str, problems: list[str]) -> tuple[Port, ...]:
    """``[6379]``, ``["127.0.0.1:6379"]``, ``["8080:80"]`` (docker), or tables with
    ``port`` / ``host`` / ``container``."""
    if not isinstance(value, list):
        problems.append(f"{where} must be a list of ports, got {value!r}")
        return ()
    ports = []
    for i, item in enumerate(value):
        here = f"{where}[{i}]"
        if isinstance(item, int) and not isinstance(item, bool):
            ports.append(Port(_port_number(item, here, problems)))
        elif isinstance(item, str):
            parts = item.rsplit(":", 2)
            numbers = [p for p in parts if p.isdigit()]
            host = parts[0] if len(parts) == 3 or (len(parts) == 2 and not parts[0].isdigit()) else "127.0.0.1"
            if len(numbers) not in (1, 2) or (len(parts) == 3 and len(numbers) != 2):
                problems.append(
                    f"{here} {item!r} is not 'port', 'host:port', 'port:container' or 'host:port:container'"
                )
                continue
            port = _port_number(int(numbers[0]), here, problems)
            container = _port_number(int(numbers[1]), here, problems) if len(numbers) == 2 else 0
            ports.append(Port(port, host or "127.0.0.1", container))
        elif isinstance(item, dict):
            problems.extend(_unknown(here, item, {"port", "host", "container"}))
            ports.append(
                Port(
                    _port_number(item.get("port"), f"{here}.port", problems),
                    str(item.get("host", "127.0.0.1")),
                    _port_number(item["container"], f"{here}.container", problems) if "container" in item else 0,
                )
            )
        else:
            problems.append(f"{here} must be a port number, a 'host:port' string or a table, got {item!r}")
    return tuple(ports)


def _probe(value: Any, where: str, base: Probe | None, problems: list[str]) -> Probe | None:
    if not isinstance(value, dict):
        problems.append(f"{where} must be a table, got {value!r}")
        return base
    problems.extend(_unknown(where, value, _PROBE_FIELDS))
    kind = value.get("kind", base.kind if base else None)
    if kind not in PROBES:
        problems.append(f"{where}.kind must be one of {', '.join(PROBES)}, got {kind!r}")
        return base
    values: dict[str, Any] = dataclasses.asdict(base) if base is not None and base.kind == kind else {}
    values["kind"] = kind
    for name in ("interval", "timeout", "start_period"):
        if name in value:
            values[name] = parse_duration(value[name], f"{where}.{name}", problems)
    if "retries" in value:
        retries = value["retries"]
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 1:
            problems.append(f"{where}.retries must be a whole number >= 1, got {retries!r}")
        else:
            values["retries"] = retries
    if "port" in value:
        values["port"] = _port_number(value["port"], f"{where}.port", problems)
    for name in ("host", "url", "user", "database"):
        if name in value:
            if not isinstance(value[name], str):
                problems.append(f"{where}.{name} must be a string, got {value[name]!r}")
            else:
                values[name] = value[name]
    if "command" in value:
        values["command"] = _strings(value["command"], f"{where}.command", problems)
    if "status" in value:
        status = value["status"]
        codes = [status] if isinstance(status, int) else status
        if not isinstance(codes, list) or not all(isinstance(c, int) and 100 <= c <= 599 for c in codes):
            problems.append(f"{where}.status must be an HTTP status or a list of them, got {status!r}")
        else:
            values["status"] = tuple(codes)
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    if "timeout" not in value and "interval" in values and values.get("timeout", 1.0) > values["interval"] > 0:
        values["timeout"] = values["interval"]  # the default timeout never outlasts a shorter interval
    probe = Probe(**values)
    if probe.kind == "http" and not probe.url.startswith(("http://", "https://")):
        problems.append(f'{where}: an http probe needs url = "http://..."')
    if probe.kind == "exec" and not probe.command:
        problems.append(f"{where}: an exec probe needs command = [...]")
    if probe.timeout > probe.interval > 0:
        problems.append(f"{where}: timeout ({probe.timeout:g} s) is longer than interval ({probe.interval:g} s)")
    if probe.interval <= 0:
        problems.append(f"{where}.interval must be above 0")
    return probe


def _restart(value: Any, where: str, base: Restart, problems: list[str]) -> Restart:
    if isinstance(value, str):
        value = {"policy": value}
    if not isinstance(value, dict):
        problems.append(f"{where} must be a policy name or a table, got {value!r}")
        return base
    problems.extend(_unknown(where, value, _RESTART_FIELDS))
    values = dataclasses.asdict(base)
    if "policy" in value:
        if value["policy"] not in RESTART_POLICIES:
            problems.append(f"{where}.policy must be one of {', '.join(RESTART_POLICIES)}, got {value['policy']!r}")
        else:
            values["policy"] = value["policy"]
    for name in ("backoff", "max_backoff"):
        if name in value:
            values[name] = parse_duration(value[name], f"{where}.{name}", problems)
    if "jitter" in value:
        jitter = value["jitter"]
        if isinstance(jitter, bool) or not isinstance(jitter, (int, float)) or not 0 <= jitter < 1:
            problems.append(f"{where}.jitter must be a fraction in [0, 1), got {jitter!r}")
        else:
            values["jitter"] = float(jitter)
    if "max_restarts" in value:
        count = value["max_restarts"]
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            problems.append(f"{where}.max_restarts must be a whole number >= 0 (0: no limit), got {count!r}")
        else:
            values["max_restarts"] = count
    restart = Restart(**values)
    if restart.max_backoff < restart.backoff:
        problems.append(f"{where}: max_backoff ({restart.max_backoff:g} s) is below backoff ({restart.backoff:g} s)")
    return restart


def parse_service(name: str, table: Any, base: ServiceDef | None, problems: list[str]) -> ServiceDef | None:
    """``[services.<name>]`` over ``base`` (an embedded definition of that name, or None)."""
    where = f"services.{name}"
    if not NAME.match(name):
        problems.append(f"{where}: a service name is 1-63 lower-case letters, digits, '-' or '_'")
        return None
    if not isinstance(table, dict):
        problems.append(f"{where} must be a table, got {table!r}")
        return None
    problems.extend(_unknown(where, table, _FIELDS))
    values: dict[str, Any] = dataclasses.asdict(base) if base is not None else {"name": name}
    values["probe"] = base.probe if base is not None else None
    values["restart"] = base.restart if base is not None else Restart()
    values["ports"] = base.ports if base is not None else ()
    if "runtime" in table:
        if table["runtime"] not in RUNTIMES:
            problems.append(f"{where}.runtime must be one of {', '.join(RUNTIMES)}, got {table['runtime']!r}")
        else:
            values["runtime"] = table["runtime"]
    for key in ("command", "volumes"):
        if key in table:
            values[key] = _strings(table[key], f"{where}.{key}", problems)
    for key in ("image", "workdir", "description", "user", "network"):
        if key in table:
            if not isinstance(table[key], str):
                problems.append(f"{where}.{key} must be a string, got {table[key]!r}")
            else:
                values[key] = table[key]
    if "ports" in table:
        values["ports"] = _ports(table["ports"], f"{where}.ports", problems)
    if "env" in table:
        env = table["env"]
        if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            problems.append(f"{where}.env must be a table of strings, got {env!r}")
        else:
            values["env"] = {**values.get("env", {}), **env}
    if "depends_on" in table:
        values["depends_on"] = _depends_on(table["depends_on"], f"{where}.depends_on", problems)
    if "probe" in table:
        values["probe"] = _probe(table["probe"], f"{where}.probe", values["probe"], problems)
    if "restart" in table:
        values["restart"] = _restart(table["restart"], f"{where}.restart", values["restart"], problems)
    if "stop_signal" in table:
        stop = table["stop_signal"]
        if not isinstance(stop, str) or stop.upper() not in signal.Signals.__members__:
            problems.append(f'{where}.stop_signal must be a signal name such as "SIGTERM", got {stop!r}')
        else:
            values["stop_signal"] = stop.upper()
    if "stop_grace" in table:
        values["stop_grace"] = parse_duration(table["stop_grace"], f"{where}.stop_grace", problems)
    if "required" in table:
        if not isinstance(table["required"], bool):
            problems.append(f"{where}.required must be true or false, got {table['required']!r}")
        else:
            values["required"] = table["required"]
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    service = ServiceDef(**values)
    if service.runtime == "process" and not service.command:
        problems.append(f"{where}: a process service needs command = [...]")
    if service.runtime == "docker" and not service.image:
        problems.append(f'{where}: a docker service needs image = "..."')
    probe = service.probe
    if probe is not None and probe.kind in ("tcp", "redis", "postgres") and not probe.port and not service.ports:
        problems.append(f"{where}.probe: a {probe.kind} probe needs a port (probe.port, or ports)")
    return service


def _depends_on(value: Any, where: str, problems: list[str]) -> dict[str, str]:
    """``["redis"]`` (condition ``started``) or ``{ redis = "healthy" }``."""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return {name: "started" for name in value}
    if not isinstance(value, dict):
        problems.append(f"{where} must be a list of names or a table name = condition, got {value!r}")
        return {}
    deps = {}
    for name, condition in value.items():
        if condition not in CONDITIONS:
            problems.append(f"{where}.{name} must be one of {', '.join(CONDITIONS)}, got {condition!r}")
        else:
            deps[name] = condition
    return deps
