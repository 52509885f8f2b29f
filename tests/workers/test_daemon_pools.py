"""Pools through the daemon: both faces, the env's interpreter, stored definitions, audit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from envplane import errors
from envplane.client import EnvplaneClient
from tests.support.daemons import ThreadDaemon
from tests.support.waiting import eventually
from tests.workers.handlers import BASIC, BROKEN, write_handler


@pytest.fixture
def client(daemon: ThreadDaemon) -> Iterator[EnvplaneClient]:
    with EnvplaneClient(daemon.grpc_addr, timeout=120) as client:
        yield client


@pytest.fixture
def env(client: EnvplaneClient, wf: str) -> tuple[str, str]:
    client.environments.create(wf, "node", packages=["alpha"])
    return wf, "node"


def test_pool_lifecycle_over_grpc(client: EnvplaneClient, env: tuple[str, str], tmp_path: Path, wf: str) -> None:
    handler = write_handler(tmp_path, "basic", BASIC)
    pool = client.workers.create_pool(f"{wf}-p", *env, str(handler), min_size=2, init_args={"greeting": "hi"})
    assert pool.state == "ready" and len(pool.workers) == 2
    assert "/builds/" in pool.python or pool.python.endswith("/python")  # the env's interpreter
    assert {c.name for c in pool.commands} >= {"echo", "count", "counter"}
    name = pool.name
    assert client.workers.execute(name, "greet", {"name": "ann"}) == "hi ann"
    assert client.workers.execute(name, "echo", [b"\x00\x01"]) == b"\x00\x01"
    assert client.workers.execute(name, "echo", [{1, 2}], use_pickle=True) == {1, 2}
    assert list(client.workers.execute_stream(name, "count", {"n": 3})) == [0, 1, 2]
    assert [client.workers.execute(name, "counter", session_id="s")["n"] for _ in range(3)] == [1, 2, 3]
    with pytest.raises(errors.CommandError) as caught:
        client.workers.execute(name, "fail", {"message": "nope"})
    assert caught.value.error_type == "ValueError" and "raise ValueError" in caught.value.traceback
    assert caught.value.message == "fail raised ValueError: nope"  # the headline once, not twice
    with pytest.raises(errors.NotFound, match="no command 'missing'"):
        client.workers.execute(name, "missing")
    with pytest.raises(errors.DeadlineExceeded, match="ran past its timeout"):
        client.workers.execute(name, "sleep", [30], timeout=0.3)
    scaled = client.workers.scale(name, 3)
    assert scaled.spec.min_size == 3
    assert len(client.workers.get_pool(name, wait_ready=30).workers) == 3
    lines = [line.text for line in client.workers.logs(name, tail=50)]
    assert "init ran" in lines
    assert name in [p.name for p in client.workers.list_pools()]
    deleted = client.workers.delete_pool(name)
    assert deleted.pool.name == name and deleted.operation_id > 0
    with pytest.raises(errors.NotFound, match="no pool named"):
        client.workers.get_pool(name)
    ops = client.operations.list(kind="pool", subject_id=name).operations
    assert sorted(op.operation for op in ops) == ["pool.create", "pool.delete", "pool.scale"]
    types = [e.type for e in client.events.watch(0, kinds=["pool"], follow=False) if e.subject.id == name]
    assert types[0] == "PoolCreated" and "PoolScaled" in types and types[-1] == "PoolDeleted"


def test_pool_over_rest(
    daemon: ThreadDaemon, client: EnvplaneClient, env: tuple[str, str], tmp_path: Path, wf: str
) -> None:
    handler = write_handler(tmp_path, "basic", BASIC)
    name = f"{wf}-rest"
    with httpx.Client(base_url=daemon.http_url, timeout=60) as http:
        body = {
            "name": name,
            "wait_ready": True,
            "spec": {"env": {"workflow_id": env[0], "node_id": env[1]}, "handler": str(handler), "min_size": 1},
        }
        created = http.post("/v1/pools", json=body)
        assert created.status_code == 201, created.text
        assert created.json()["state"] == "ready"
        reply = http.post(
            f"/v1/pools/{name}/execute", json={"command": "add", "args_json": json.dumps({"a": 2, "b": 5})}
        )
        assert reply.status_code == 200 and json.loads(reply.json()["result_json"]) == 7
        failed = http.post(f"/v1/pools/{name}/execute", json={"command": "fail"}).json()
        assert failed["error"]["type"] == "ValueError" and failed["error"]["message"] == "bad thing"
        with http.stream(
            "POST", f"/v1/pools/{name}/execute:stream", json={"command": "count", "args_json": "[3]"}
        ) as r:
            items = [json.loads(line) for line in r.iter_lines() if line]
        assert [json.loads(i["chunk_json"]) for i in items[:-1]] == [0, 1, 2] and items[-1]["end"]["chunks"] == "3"
        typo = http.post(f"/v1/pools/{name}/execute", json={"comand": "add"})
        assert typo.status_code == 422 and "comand" in typo.json()["error"]["message"]
        path_field = http.post(f"/v1/pools/{name}/execute", json={"pool": "other", "command": "add"})
        assert path_field.status_code == 422 and "the path gives it" in path_field.json()["error"]["message"]
        assert http.get(f"/v1/pools/{name}-nope").status_code == 404
        unknown = http.post(f"/v1/pools/{name}/execute", json={"command": "nope"})
        assert unknown.status_code == 404 and "add" in unknown.json()["error"]["message"]
        metrics = http.get("/metrics").text
        assert f'envplane_worker_calls_total{{command="add",outcome="ok",pool="{name}"}}' in metrics
        assert f'envplane_workers{{pool="{name}",state="idle"}} 1.0' in metrics
        assert http.delete(f"/v1/pools/{name}").status_code == 200


def test_broken_handler_fails_create_with_stderr(
    client: EnvplaneClient, env: tuple[str, str], tmp_path: Path, wf: str
) -> None:
    handler = write_handler(tmp_path, "broken", BROKEN)
    with pytest.raises(errors.PoolFailed) as caught:
        client.workers.create_pool(f"{wf}-broken", *env, str(handler))
    assert "cannot load the model" in caught.value.message and "about to fail" in caught.value.detail
    assert caught.value.operation_id > 0
    assert f"{wf}-broken" not in [p.name for p in client.workers.list_pools()]  # not kept


def test_create_refuses_bad_definitions(client: EnvplaneClient, env: tuple[str, str], tmp_path: Path, wf: str) -> None:
    handler = str(write_handler(tmp_path, "basic", BASIC))
    with pytest.raises(errors.InvalidArgument, match=r"max_size .* is below min_size"):
        client.workers.create_pool(f"{wf}-a", *env, handler, min_size=3, max_size=2)
    with pytest.raises(errors.InvalidArgument, match="transport must be one of pipe, grpc"):
        client.workers.create_pool(f"{wf}-a", *env, handler, transport="zmq")
    with pytest.raises(errors.InvalidArgument, match="pool name"):
        client.workers.create_pool("bad name!", *env, handler)
    with pytest.raises(errors.NotFound):
        client.workers.create_pool(f"{wf}-a", wf, "no-such-node", handler)
    with pytest.raises(errors.InvalidArgument, match="bad pool option"):
        client.workers.create_pool(f"{wf}-a", *env, handler, min_sise=2)
    client.workers.create_pool(f"{wf}-a", *env, handler)
    with pytest.raises(errors.AlreadyExists):
        client.workers.create_pool(f"{wf}-a", *env, handler)
    assert client.workers.create_pool(f"{wf}-a", *env, handler, exist_ok=True).name == f"{wf}-a"
    client.workers.delete_pool(f"{wf}-a")


def test_grpc_transport_needs_grpcio_in_the_env(
    client: EnvplaneClient, env: tuple[str, str], tmp_path: Path, wf: str
) -> None:
    handler = str(write_handler(tmp_path, "basic", BASIC))
    with pytest.raises(errors.FailedPrecondition, match=r"needs grpcio in environment .* add_grpcio"):
        client.workers.create_pool(f"{wf}-g", *env, handler, transport="grpc")


def test_worker_crash_is_unavailable_not_retried_by_the_client(
    client: EnvplaneClient, env: tuple[str, str], tmp_path: Path, wf: str
) -> None:
    handler = str(write_handler(tmp_path, "basic", BASIC))
    name = f"{wf}-crash"
    client.workers.create_pool(name, *env, handler, min_size=1, restart_backoff_seconds=0.05)
    marker = tmp_path / "ran"
    with pytest.raises(errors.WorkerCrashed, match="exited with code 9"):
        client.workers.execute(name, "crash_once", [str(marker)])  # one attempt: the client does not retry
    assert client.workers.execute(name, "crash_once", [str(marker)], timeout=30) > 0
    client.workers.delete_pool(name)


@pytest.mark.ray  # the plane daemon: its find-links hold grpcio's wheel (fetched with ray's)
def test_add_grpcio_puts_it_in_the_env_for_the_grpc_transport(
    plane_daemon: ThreadDaemon, tmp_path: Path, wf: str
) -> None:
    handler = str(write_handler(tmp_path, "basic", BASIC))
    with EnvplaneClient(plane_daemon.grpc_addr, timeout=300) as client:
        client.environments.create(wf, "g", packages=["alpha"])
        pool = client.workers.create_pool(f"{wf}-g", wf, "g", handler, transport="grpc", add_grpcio=True)
        assert pool.state == "ready" and pool.spec.transport == "grpc"
        assert "grpcio" in client.environments.get(wf, "g").dependencies[-1]
        assert client.workers.execute(pool.name, "echo", [b"over grpc"]) == b"over grpc"
        assert list(client.workers.execute_stream(pool.name, "count", [3])) == [0, 1, 2]
        client.workers.delete_pool(pool.name)


VERSION_HANDLER = """
import alpha

def version():
    return alpha.__version__
"""


def test_a_pool_follows_its_environment(client: EnvplaneClient, tmp_path: Path, wf: str) -> None:
    """Its env's packages change: the workers are recycled onto the new build. Its env is
    deleted: the pool fails, saying so (the definition stays until deleted)."""
    client.environments.create(wf, "follow", packages=["alpha==1.0.0"])
    handler = str(write_handler(tmp_path, "versions", VERSION_HANDLER))
    name = f"{wf}-follow"
    pool = client.workers.create_pool(name, wf, "follow", handler, min_size=2)
    old_pids = {w.pid for w in pool.workers}
    assert client.workers.execute(name, "version") == "1.0.0"
    client.environments.update_deps(wf, "follow", ["alpha==2.0.0"])
    eventually(lambda: client.workers.execute(name, "version") == "2.0.0", timeout=30, what="the new alpha")
    shown = client.workers.get_pool(name, wait_ready=30)
    assert not {w.pid for w in shown.workers} & old_pids
    assert all("environment" in w.last_exit and "changed" in w.last_exit for w in shown.workers)
    client.environments.delete(wf, "follow")
    eventually(lambda: client.workers.get_pool(name).state == "failed", timeout=30, what="the pool to fail")
    assert "was deleted" in client.workers.get_pool(name).error
    with pytest.raises(errors.PoolFailed, match="was deleted"):
        client.workers.execute(name, "version")
    client.workers.delete_pool(name)
