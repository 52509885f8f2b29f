"""Service definitions and their TOML: every problem named at once, nothing half-loaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from envplane import errors
from envplane.services.service.definitions import Port, parse_duration
from envplane.services.service.registry import EMBEDDED, ServiceConfigError, load

ISSUE_EXAMPLE = """
[services.api]
runtime = "process"
command = ["python3", "-m", "http.server", "8081", "--bind", "127.0.0.1"]
depends_on = { redis = "healthy" }
restart = { policy = "on-failure", backoff = "1s", max_backoff = "30s", max_restarts = 5 }
[services.api.probe]
kind = "http"
url = "http://127.0.0.1:8081/"
interval = "1s"
"""


def test_the_documented_shape_loads() -> None:
    registry = load(ISSUE_EXAMPLE)
    api = registry["api"]
    assert api.command[:3] == ("python3", "-m", "http.server") and api.depends_on == {"redis": "healthy"}
    assert (api.restart.policy, api.restart.backoff, api.restart.max_backoff, api.restart.max_restarts) == (
        "on-failure", 1.0, 30.0, 5,
    )  # fmt: skip
    assert api.probe is not None and (api.probe.kind, api.probe.interval) == ("http", 1.0)
    assert registry.closure(["api"]) == ["redis", "api"]


def test_embedded_definitions() -> None:
    registry = load()
    for name in ("redis", "http", "redb", "ollama", "infermesh-node-a", "infermesh-node-b", "infermesh-router",
                 "zookeeper", "kafka", "prometheus"):  # fmt: skip
        assert registry[name].embedded
    assert registry["redis"].runtime == "process" and registry["redis"].ports == (Port(6379),)
    assert registry["kafka"].runtime == "docker" and "needs the image" in registry["kafka"].description
    assert registry.closure(["infermesh-router"]) == ["infermesh-node-a", "infermesh-node-b", "infermesh-router"]
    assert registry.waves(registry.closure(["kafka"])) == [["zookeeper"], ["kafka"]]


def test_overriding_an_embedded_service_keeps_what_it_does_not_name() -> None:
    registry = load('[services.redis]\nports = [6390]\nprobe = { port = 6390 }\nenv = { A = "1" }\n')
    redis = registry["redis"]
    assert redis.ports == (Port(6390),) and redis.probe is not None
    assert (redis.probe.kind, redis.probe.port, redis.probe.interval) == ("redis", 6390, 0.5)
    # the embedded command says ${PORT}: overriding ports alone moves the service
    assert redis.command == tuple(a.replace("${PORT}", "6390") for a in EMBEDDED["redis"].command)
    assert redis.env == {"A": "1"}


def test_every_problem_is_named_and_nothing_loads() -> None:
    bad = """
[services.api]
runtime = "process"
comand = ["x"]
depends_on = { db = "healthy", redis = "ready" }
ports = [6379]
restart = { policy = "sometimes", backoff = "fast" }
[services.api.probe]
kind = "http"
interval = "soon"
[services.a]
command = ["a"]
depends_on = ["b"]
[services.b]
command = ["b"]
depends_on = ["a"]
[services.Bad]
command = ["x"]
"""
    with pytest.raises(ServiceConfigError) as caught:
        load(bad)
    problems = "\n".join(caught.value.problems)
    assert isinstance(caught.value, errors.InvalidArgument)
    for fragment in (
        "services.api: unknown field 'comand' (did you mean 'command'?)",
        "services.api: a process service needs command",
        "services.api.depends_on.redis must be one of started, healthy, completed_successfully",
        "services.api.depends_on: unknown service 'db'",
        "services.api.restart.policy must be one of no, on-failure, always",
        "services.api.restart.backoff must be a duration",
        "services.api.probe.interval must be a duration",
        "an http probe needs url",
        "dependency cycle: a -> b -> a",
        "services.redis.ports: 127.0.0.1:6379 is also services.api's",
        "services.Bad: a service name is 1-63 lower-case",
    ):
        assert fragment in problems, fragment
    assert f"{len(caught.value.problems)} problem(s)" in caught.value.message


def test_bad_files() -> None:
    with pytest.raises(ServiceConfigError, match="not valid TOML"):
        load("[services.api\n")
    with pytest.raises(ServiceConfigError, match="cannot read it"):
        load(path=Path("/nonexistent/services.toml"))
    with pytest.raises(errors.InvalidArgument, match=r"no service named 'nope'.*redis"):
        load()["nope"]


def test_durations() -> None:
    problems: list[str] = []
    assert [parse_duration(v, "d", problems) for v in ("500ms", "2s", "1.5m", "1h", 3, 0.25)] == [
        0.5, 2.0, 90.0, 3600.0, 3.0, 0.25,
    ]  # fmt: skip
    assert problems == []
    for bad in ("2 days", -1, True, "1x"):
        parse_duration(bad, "d", problems)
    assert len(problems) == 4


def test_ports_forms() -> None:
    registry = load(
        '[services.web]\nruntime = "docker"\nimage = "busybox"\n'
        'ports = [8081, "127.0.0.1:8082", "8083:80", "0.0.0.0:8084:81", { port = 8085, container = 82 }]\n'
    )
    assert [str(p) for p in registry["web"].ports] == [
        "127.0.0.1:8081", "127.0.0.1:8082", "127.0.0.1:8083->80", "0.0.0.0:8084->81", "127.0.0.1:8085->82",
    ]  # fmt: skip


def test_stop_order_is_the_reverse_and_dependents_are_found() -> None:
    registry = load(ISSUE_EXAMPLE + '[services.worker]\ncommand = ["w"]\ndepends_on = ["api"]\n')
    assert registry.waves(registry.closure(["worker"])) == [["redis"], ["api"], ["worker"]]
    assert registry.dependents("redis") == ["api", "worker"]


def test_each_embedded_definition_passes_its_own_checks() -> None:
    """An empty override re-parses every embedded service through the same checks."""
    registry = load("".join(f"[services.{name}]\n" for name in EMBEDDED))
    assert set(registry.services) == set(EMBEDDED)


def test_healthy_on_a_service_without_a_probe_is_refused() -> None:
    toml = '[services.a]\ncommand = ["true"]\n[services.b]\ncommand = ["true"]\ndepends_on = { a = "healthy" }\n'
    with pytest.raises(ServiceConfigError) as failed:
        load(toml)
    assert failed.value.problems == [
        "services.b.depends_on: 'a' has no probe, so it is never \"healthy\": give it one, or depend on it "
        'being "started"'
    ]
