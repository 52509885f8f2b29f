"""The docker runtime on a real engine (dockerd started here, host networking, busybox images
built locally, a local registry): a container with an HTTP probe, logs and stats, a changed
spec re-created, an unchanged one adopted by a new daemon, PullImages with the engine's own
progress, /health naming the engine. Skipped only where an engine cannot start at all."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from envplane.client import EnvplaneClient
from envplane.errors import ServiceFailed
from tests.support.daemons import ThreadDaemon
from tests.support.docker_engine import Engine, running_engine, why_no_engine
from tests.support.processes import free_port
from tests.support.waiting import eventually

pytestmark = [pytest.mark.docker, pytest.mark.skipif(why_no_engine() is not None, reason=str(why_no_engine()))]


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    with running_engine(tmp_path_factory.mktemp("dockerd")) as running:
        running.image("local/busybox:test")
        yield running


def web(port: int, image: str = "local/busybox:test", name: str = "web", extra: str = "") -> str:
    return f"""
[services.{name}]
runtime = "docker"
image = "{image}"
network = "host"
command = ["httpd", "-f", "-v", "-p", "127.0.0.1:{port}", "-h", "/www"]
ports = [{port}]
stop_grace = "1s"
probe = {{ kind = "http", url = "http://127.0.0.1:{port}/", interval = "200ms" }}
{extra}
"""


@pytest.fixture
def make_daemon(services_daemon: Callable[..., ThreadDaemon], engine: Engine) -> Callable[..., ThreadDaemon]:
    """A daemon on the test engine (``docker_host``)."""

    def make(toml: str, **overrides: Any) -> ThreadDaemon:
        return services_daemon(toml, data="data", docker_host=engine.url, **overrides)

    return make


def test_a_container_with_an_http_probe_logs_and_stats(
    make_daemon: Callable[..., ThreadDaemon], engine: Engine
) -> None:
    port = free_port()
    daemon = make_daemon(web(port))
    with EnvplaneClient(daemon.grpc_addr) as client:
        progress = list(client.services.up(["web"], wait=True, timeout=30))
        assert progress[-1].state == "healthy"
        service = client.services.status(["web"])[0]
        assert service.runtime == "docker" and len(service.container_id) == 64 and service.pid > 0
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text == "hello from busybox\n"
        with engine.client() as docker_client:
            container = docker_client.containers.get(service.container_id)
            labels = container.labels
        assert labels["io.envplane.service"] == "web" and len(labels["io.envplane.spec-hash"]) == 16
        assert container.name.startswith("envplane-") and container.name.endswith("-web")
        assert eventually(lambda: client.services.status(["web"])[0].memory_bytes > 0, what="container stats")
        lines = eventually(lambda: list(client.services.logs("web", tail=5)), what="httpd's access log")
        assert lines and all(line.timestamp > 0 and line.container_id == service.container_id for line in lines)
        health = httpx.get(f"{daemon.http_url}/health", timeout=10).json()
        assert health["docker"].startswith("Docker ") or health["docker"] == "not checked yet"
        eventually(lambda: httpx.get(f"{daemon.http_url}/health").json()["docker"].startswith("Docker "))
        results = client.services.down(["web"], timeout=1)
        assert results[0].ok
        with engine.client() as docker_client:
            assert docker_client.containers.list(all=True, filters={"label": "io.envplane.service=web"}) == []


def test_a_changed_spec_is_re_created_and_an_unchanged_one_adopted(
    make_daemon: Callable[..., ThreadDaemon], engine: Engine
) -> None:
    port = free_port()
    first = make_daemon(web(port), services_on_shutdown="leave")
    with EnvplaneClient(first.grpc_addr) as client:
        list(client.services.up(["web"], wait=True, timeout=30))
        original = client.services.status(["web"])[0].container_id
    first.stop()  # leaves it running, for the next daemon

    second = make_daemon(web(port), services_on_shutdown="leave")  # same data dir, same spec
    with EnvplaneClient(second.grpc_addr) as client:
        adopted = client.services.status(["web"])[0]
        assert adopted.container_id == original and adopted.adopted and adopted.state == "healthy"
    second.stop()

    third = make_daemon(web(port, extra='env = { MODE = "changed" }'))  # the definition changed
    with EnvplaneClient(third.grpc_addr) as client:
        assert client.services.status(["web"])[0].state == "stopped"  # not adopted: removed
        list(client.services.up(["web"], wait=True, timeout=30))
        recreated = client.services.status(["web"])[0].container_id
        assert recreated != original
    with engine.client() as docker_client:
        containers = docker_client.containers.list(all=True, filters={"label": "io.envplane.service=web"})
        assert [c.id for c in containers] == [recreated]  # no duplicate, no stale one
        assert containers[0].attrs["Config"]["Env"].count("MODE=changed") == 1


def test_a_container_that_exits_is_restarted_by_its_policy(make_daemon: Callable[..., ThreadDaemon]) -> None:
    toml = """
[services.blinker]
runtime = "docker"
image = "local/busybox:test"
network = "host"
command = ["sh", "-c", "echo up; sleep 0.3; exit 4"]
restart = { policy = "on-failure", backoff = "100ms", max_restarts = 1 }
"""
    daemon = make_daemon(toml)
    with EnvplaneClient(daemon.grpc_addr) as client:
        list(client.services.up(["blinker"]))
        done = eventually(lambda: [s for s in client.services.status(["blinker"]) if s.state == "failed"], timeout=30)
        assert done[0].restarts == 1 and done[0].exit_code == 4 and "exited with code 4" in done[0].message


def test_a_missing_image_fails_with_the_engines_reason(
    make_daemon: Callable[..., ThreadDaemon], engine: Engine
) -> None:
    daemon = make_daemon(web(free_port(), image=f"{engine.registry}/nothing-here:1"))
    with EnvplaneClient(daemon.grpc_addr) as client, pytest.raises(ServiceFailed) as failed:
        list(client.services.up(["web"], wait=True, timeout=30))
    assert "cannot pull" in str(failed.value) and "nothing-here" in str(failed.value)


def test_pull_images_streams_the_engines_real_progress(
    make_daemon: Callable[..., ThreadDaemon], engine: Engine
) -> None:
    tag = f"{engine.registry}/big:1"
    engine.image(tag, files={"data/blob": os.urandom(24 * 2**20)})  # a layer big enough for several events
    with engine.client() as docker_client:
        for line in docker_client.api.push(tag.rpartition(":")[0], tag="1", stream=True, decode=True):
            assert "error" not in line, line
        docker_client.images.remove(tag, force=True)
    daemon = make_daemon("")
    with EnvplaneClient(daemon.grpc_addr) as client:
        steps = list(client.services.pull([tag]))
    downloading = [s for s in steps if s.status == "Downloading"]
    assert downloading and all(s.image == tag and s.total > 0 and 0 <= s.current <= s.total for s in downloading)
    assert any(s.status.startswith(("Status: Downloaded", "Digest")) for s in steps)
    with engine.client() as docker_client:
        assert docker_client.images.get(tag)

    # the original protocol's PullImages: the same real progress, in its own fields
    import grpc

    from envplane.env_manager.v1 import env_manager_pb2, env_manager_pb2_grpc

    with engine.client() as docker_client:
        docker_client.images.remove(tag, force=True)
    with grpc.insecure_channel(daemon.grpc_addr) as channel:
        stub = env_manager_pb2_grpc.EnvManagerServiceStub(channel)
        original = list(stub.PullImages(env_manager_pb2.PullImagesRequest(image_names=[tag])))
    sizes = [p for p in original if p.total > 0]
    assert sizes and all(p.image_name == tag and 0 <= p.progress_percent <= 100 for p in original)
    assert any(p.status.startswith("Downloading") for p in sizes)

    rest = httpx.post(f"{daemon.http_url}/v1/images:pull", json={"images": [tag]}, timeout=60)
    lines = [json.loads(line) for line in rest.text.splitlines()]
    assert rest.status_code == 200 and lines[-1]["image"] == tag
    assert "up to date" in lines[-1]["status"].lower() or lines[-1]["status"].startswith("Digest")
