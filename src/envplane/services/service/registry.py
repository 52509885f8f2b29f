"""The services a daemon knows: envplane's embedded definitions, then the TOML file's tables
over them (``ENVPLANE_SERVICES_CONFIG``, or ``[services.*]`` in the daemon's own config).

:func:`load` checks everything before anything may start, and raises one
``ServiceConfigError`` listing every problem: a field's own (an unknown field, a bad duration),
and those between services (an unknown dependency, a dependency cycle, two services on one
port). The graph helpers give the order things start and stop in: dependencies first, services
of one wave in parallel, and the reverse to stop.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envplane.errors import InvalidArgument
from envplane.services.service.definitions import Port, Probe, Restart, ServiceDef, parse_service


class ServiceConfigError(InvalidArgument):
    """The service configuration has problems; ``problems`` lists each, and nothing starts."""

    def __init__(self, problems: list[str], source: str) -> None:
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s) in the service configuration", detail=lines)
        self.problems = problems


def _process(name: str, command: list[str], port: int, probe: Probe, description: str) -> ServiceDef:
    return ServiceDef(
        name,
        runtime="process",
        command=tuple(command),
        ports=(Port(port),),
        probe=probe,
        restart=Restart(policy="on-failure"),
        description=description,
        embedded=True,
    )


def _docker(name: str, image: str, ports: list[int], probe: Probe | None, description: str) -> ServiceDef:
    return ServiceDef(
        name,
        runtime="docker",
        image=image,
        ports=tuple(Port(p, container=p) for p in ports),
        probe=probe,
        restart=Restart(policy="on-failure"),
        description=f"{description} (Docker; needs the image {image})",
        embedded=True,
    )


# initdb once (the cluster lives in the service's own folder), then postgres in the foreground,
# TCP on 127.0.0.1 only and no Unix socket (its path could be too long, and is not needed).
POSTGRES_SCRIPT = (
    'set -e; bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1); PATH="$bin:$PATH"; '
    '[ -s "$SERVICE_DIR/pgdata/PG_VERSION" ] || initdb -D "$SERVICE_DIR/pgdata" -U postgres --auth=trust '
    '-E UTF8 >/dev/null; exec postgres -D "$SERVICE_DIR/pgdata" -p ${PORT} -h 127.0.0.1 -k ""'
)

EMBEDDED: dict[str, ServiceDef] = {
    service.name: service
    for service in (
        _process(
            "redis",
            ["redis-server", "--port", "${PORT}", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            6379,
            Probe("redis", interval=0.5, timeout=0.5),
            "Redis on 127.0.0.1:6379, no persistence (needs redis-server on PATH)",
        ),
        _process(
            "http",
            ["python3", "-m", "http.server", "${PORT}", "--bind", "127.0.0.1"],
            8080,
            Probe("http", url="http://127.0.0.1:${PORT}/", interval=0.5, timeout=0.5),
            "a generic HTTP service (python3 -m http.server); override command and probe.url",
        ),
        dataclasses.replace(
            _process(
                "postgres",
                ["sh", "-c", POSTGRES_SCRIPT],
                5432,
                Probe("postgres", interval=0.5, timeout=0.5, retries=3, start_period=30.0),
                "PostgreSQL on 127.0.0.1:5432, its cluster in the service's folder, trust authentication "
                "for user postgres (needs the Debian postgresql package, or initdb and postgres on PATH)",
            ),
            user="postgres",  # when the daemon runs as root: PostgreSQL refuses to
            stop_signal="SIGINT",  # "fast" shutdown: ends the sessions, then stops
        ),
        _docker("redb", "redis:7-alpine", [6380], Probe("redis", port=6380), "Redis for the original's redb"),
        _docker("ollama", "ollama/ollama:latest", [11434], Probe("http", url="http://127.0.0.1:11434/"), "Ollama"),
        _docker("infermesh-node-a", "infermesh/node:latest", [9001], Probe("tcp", port=9001), "InferMesh node A"),
        _docker("infermesh-node-b", "infermesh/node:latest", [9002], Probe("tcp", port=9002), "InferMesh node B"),
        _docker("infermesh-router", "infermesh/router:latest", [9000], Probe("tcp", port=9000), "InferMesh router"),
        _docker("zookeeper", "zookeeper:3.9", [2181], Probe("tcp", port=2181), "ZooKeeper"),
        _docker("kafka", "bitnami/kafka:3.7", [9092], Probe("tcp", port=9092), "Kafka"),
        _docker(
            "prometheus",
            "prom/prometheus:latest",
            [9090],
            Probe("http", url="http://127.0.0.1:9090/-/ready"),
            "Prometheus",
        ),
    )
}
# The original's topology: the router needs its nodes, kafka its zookeeper.
EMBEDDED["infermesh-router"] = dataclasses.replace(
    EMBEDDED["infermesh-router"], depends_on={"infermesh-node-a": "healthy", "infermesh-node-b": "healthy"}
)
EMBEDDED["kafka"] = dataclasses.replace(EMBEDDED["kafka"], depends_on={"zookeeper": "healthy"})


@dataclass(frozen=True)
class Registry:
    services: Mapping[str, ServiceDef]
    source: str = "embedded definitions"

    def __getitem__(self, name: str) -> ServiceDef:
        try:
            return self.services[name]
        except KeyError:
            known = ", ".join(sorted(self.services))
            raise InvalidArgument(f"no service named {name!r} (services: {known})") from None

    def closure(self, names: Iterable[str]) -> list[str]:
        """``names`` and everything they depend on, transitively, dependencies first."""
        wanted: set[str] = set()
        stack = [self[name].name for name in names]
        while stack:
            name = stack.pop()
            if name not in wanted:
                wanted.add(name)
                stack.extend(self[name].depends_on)
        return [name for name in self.order() if name in wanted]

    def order(self) -> list[str]:
        """Every service, dependencies first (ties by name: the order is stable)."""
        return [name for wave in self.waves(self.services) for name in wave]

    def waves(self, names: Iterable[str]) -> list[list[str]]:
        """``names`` in waves: each wave's services depend only on earlier waves' (start a wave in
        parallel; stop in reverse)."""
        left = set(names)
        placed: set[str] = set()
        waves = []
        while left:
            wave = sorted(n for n in left if all(d in placed or d not in left for d in self.services[n].depends_on))
            if not wave:  # load() refuses cycles; a registry built by hand may have one
                raise InvalidArgument(f"dependency cycle among {', '.join(sorted(left))}")
            waves.append(wave)
            placed.update(wave)
            left.difference_update(wave)
        return waves

    def dependents(self, name: str) -> list[str]:
        """What depends on ``name``, directly or not (stopped before it)."""
        found: set[str] = set()
        frontier = {name}
        while frontier:
            frontier = {s.name for s in self.services.values() if set(s.depends_on) & frontier} - found
            found |= frontier
        return [n for n in self.order() if n in found]


def load(text: str | None = None, *, path: Path | None = None) -> Registry:
    """The embedded definitions with the TOML's ``[services.*]`` tables over them."""
    source = str(path) if path is not None else "the service configuration"
    if path is not None:
        try:
            text = path.read_text()
        except OSError as exc:
            raise ServiceConfigError([f"cannot read it: {exc.strerror or exc}"], source) from None
    data: dict[str, Any] = {}
    if text:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ServiceConfigError([f"not valid TOML: {exc}"], source) from None
    tables = data.get("services", {})
    problems: list[str] = []
    if not isinstance(tables, dict):
        raise ServiceConfigError(["'services' must be a table of [services.<name>] tables"], source)
    services = dict(EMBEDDED)
    for name, table in tables.items():
        parsed = parse_service(name, table, EMBEDDED.get(name), problems)
        if parsed is not None:
            services[name] = parsed
    problems.extend(_between(services))
    if problems:
        raise ServiceConfigError(problems, source)
    services = {name: with_port(service) for name, service in services.items()}
    return Registry(services, source if text else "embedded definitions")


def with_port(service: ServiceDef) -> ServiceDef:
    """``${PORT}`` in the command, the variables and the probe -> the service's first port, so
    overriding ``ports`` alone moves a service (``${SERVICE_DIR}`` waits for its runtime)."""
    if not service.ports:
        return service
    port = str(service.ports[0].port)

    def put(text: str) -> str:
        return text.replace("${PORT}", port)

    probe = service.probe
    if probe is not None:
        probe = dataclasses.replace(probe, url=put(probe.url), command=tuple(put(a) for a in probe.command))
    return dataclasses.replace(
        service,
        command=tuple(put(a) for a in service.command),
        env={k: put(v) for k, v in service.env.items()},
        probe=probe,
    )


def _between(services: Mapping[str, ServiceDef]) -> list[str]:
    """What only the whole set can show: unknown dependencies, cycles, port clashes."""
    problems = []
    for service in services.values():
        for dependency in service.depends_on:
            if dependency not in services:
                problems.append(f"services.{service.name}.depends_on: unknown service {dependency!r}")
            elif dependency == service.name:
                problems.append(f"services.{service.name}.depends_on: a service cannot depend on itself")
            elif service.depends_on[dependency] == "healthy" and services[dependency].probe is None:
                problems.append(
                    f"services.{service.name}.depends_on: {dependency!r} has no probe, so it is never "
                    f'"healthy": give it one, or depend on it being "started"'
                )
    problems.extend(_cycles(services))
    owners: dict[tuple[str, int], str] = {}
    for service in sorted(services.values(), key=lambda s: s.name):
        for port in service.ports:
            key = (port.host, port.port)
            if key in owners:
                problems.append(
                    f"services.{service.name}.ports: {port.host}:{port.port} is also services.{owners[key]}'s"
                )
            else:
                owners[key] = service.name
    return problems


def _cycles(services: Mapping[str, ServiceDef]) -> list[str]:
    """Each dependency cycle once, as a path: ``a -> b -> a``."""
    found: list[str] = []
    seen: set[frozenset[str]] = set()
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for dependency in services[name].depends_on:
            if dependency not in services or dependency == name:
                continue
            if state.get(dependency) == 1:
                cycle = [*path[path.index(dependency) :], dependency]
                if frozenset(cycle) not in seen:
                    seen.add(frozenset(cycle))
                    found.append("dependency cycle: " + " -> ".join(cycle))
            elif dependency not in state:
                visit(dependency, [*path, dependency])
        state[name] = 2

    for name in sorted(services):
        if name not in state:
            visit(name, [name])
    return found
