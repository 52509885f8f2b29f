"""Every envplane.v1 RPC through the typed client, against a real daemon on loopback."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from envplane import errors
from envplane.client import AsyncEnvplaneClient, EnvplaneClient
from envplane.client.retry import RetryPolicy
from envplane.v1 import environments_pb2 as pb
from envplane.v1 import events_pb2
from tests.support.daemons import ThreadDaemon
from tests.support.envcheck import version_in_env
from tests.support.waiting import eventually


@pytest.fixture
def client(daemon: ThreadDaemon) -> EnvplaneClient:
    with EnvplaneClient(daemon.grpc_addr, timeout=60) as c:
        yield c  # type: ignore[misc]


def test_full_lifecycle(client: EnvplaneClient, wf: str) -> None:
    env = client.environments.create(wf, "rag", packages=["alpha<2"], python_version="3.11")
    assert env.status == pb.READY and env.python_version.startswith("3.11")
    assert version_in_env(env.python_executable, "alpha") == "1.1.0"
    assert client.environments.get(wf, "rag").build_id == env.build_id
    again = client.environments.create(wf, "rag", packages=["alpha<2"], python_version="3.11", exist_ok=True)
    assert again.lock_sha256 == env.lock_sha256 and len(env.lock_sha256) == 64

    added = client.environments.add_deps(wf, "rag", ["gamma==0.1.0"])
    assert [(c.name, c.old_version, c.new_version) for c in added.changes] == [("gamma", "", "0.1.0")]
    assert added.operation.status == "SUCCEEDED" and added.operation.exit_code == 0

    updated = client.environments.update_deps(wf, "rag", ["gamma>=0.2"])
    assert [(c.name, c.new_version) for c in updated.changes] == [("gamma", "0.2.0")]

    deps = client.environments.list_deps(wf, "rag")
    assert list(deps.declared) == ["alpha<2", "gamma>=0.2"]
    assert {p.name: p.version for p in deps.locked} == {"alpha": "1.1.0", "gamma": "0.2.0"}

    removed = client.environments.remove_deps(wf, "rag", ["gamma"])
    assert [(c.name, c.new_version) for c in removed.changes] == [("gamma", "")]

    synced = client.environments.sync(wf, "rag")
    assert synced.environment.status == pb.READY and synced.operation.operation == "sync"

    exported = client.environments.export(wf, "rag")
    assert "alpha==1.1.0" in exported.requirements_txt and "[[package]]" in exported.uv_lock

    listed = client.environments.list(workflow_id=wf)
    assert [e.ref.node_id for e in listed.environments] == ["rag"] and listed.total == 1

    ops = client.operations.list(workflow_id=wf)
    assert [o.operation for o in ops.operations] == ["sync", "remove", "update", "add", "create"]
    assert json.loads(ops.operations[2].metadata_json)["changes"] == {"gamma": ["0.1.0", "0.2.0"]}

    deleted = client.environments.delete(wf, "rag")
    assert deleted.operation.operation == "delete"
    with pytest.raises(errors.NotFound):
        client.environments.get(wf, "rag")
    assert client.operations.delete(workflow_id=wf).deleted_count == 6


def test_versions_and_pagination(client: EnvplaneClient, wf: str) -> None:
    for version in ("v1", "v2", "v3"):
        client.environments.create(wf, "node", version_id=version, packages=["alpha"])
    first = client.environments.list(workflow_id=wf, page_size=2)
    assert [e.ref.version_id for e in first.environments] == ["v1", "v2"] and first.next_page_token
    assert [e.ref.version_id for e in client.environments.iter(workflow_id=wf)] == ["v1", "v2", "v3"]
    assert client.environments.list(workflow_id=wf, status="READY").total == 3
    page = client.operations.list(workflow_id=wf, page_size=1)
    assert page.total == 3 and len(page.operations) == 1 and page.next_page_token


def test_already_exists_busy_and_deadline(
    client: EnvplaneClient, wf: str, slow_package: Callable[[float], str]
) -> None:
    client.environments.create(wf, "n", packages=["alpha"])
    with pytest.raises(errors.AlreadyExists) as info:
        client.environments.create(wf, "n", packages=["alpha"])
    assert info.value.__cause__.code() == grpc.StatusCode.ALREADY_EXISTS
    slow = slow_package(2.0)
    worker = threading.Thread(target=client.environments.add_deps, args=(wf, "n", [slow]))
    worker.start()
    eventually(lambda: client.environments.get(wf, "n").busy_with, what="the add to hold the env")
    with pytest.raises(errors.EnvBusy) as busy:
        client.environments.add_deps(wf, "n", ["gamma"], fail_if_busy=True)
    assert busy.value.__cause__.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(errors.DeadlineExceeded) as late:
        client.environments.sync(wf, "n", timeout=0.5)
    assert late.value.__cause__.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    worker.join(30)
    assert slow in " ".join(client.environments.get(wf, "n").dependencies)


def test_streaming_create_reports_phases_and_the_final_env(client: EnvplaneClient, wf: str) -> None:
    # A spec no other test uses: its resolution and build run here, so uv has lines to stream.
    items = list(client.environments.create_stream(wf, "s", packages=["beta", "delta"]))
    phases = [i.phase for i in items]
    assert phases[0] == "validate" and phases[-1] == "done"
    assert {"resolve", "install", "uv"} <= set(phases)
    assert any("Installed" in i.message for i in items if i.phase == "uv")
    assert items[-1].environment.status == pb.READY
    with pytest.raises(errors.AlreadyExists):
        list(client.environments.create_stream(wf, "s", packages=["beta", "delta"]))
    reused = list(client.environments.create_stream(wf, "s", packages=["beta", "delta"], exist_ok=True))
    assert "reusing it" in reused[-1].message and reused[-1].environment.build_id == items[-1].environment.build_id


def test_watch_events_follows_live_and_resumes(client: EnvplaneClient, wf: str, daemon: ThreadDaemon) -> None:
    start = max((e.cursor for e in client.events.watch(0, follow=False)), default=0)
    received: list[events_pb2.Event] = []

    def follow() -> None:
        with EnvplaneClient(daemon.grpc_addr) as watcher:
            for event in watcher.events.watch(start, types=["EnvironmentCreated", "EnvironmentDeleted"]):
                if event.subject.workflow_id == wf:
                    received.append(event)
                if len(received) == 2:
                    return

    thread = threading.Thread(target=follow)
    thread.start()
    time.sleep(0.3)
    client.environments.create(wf, "w", packages=["alpha"])
    client.environments.delete(wf, "w")
    thread.join(30)
    assert [e.type for e in received] == ["EnvironmentCreated", "EnvironmentDeleted"]
    assert json.loads(received[0].payload_json)["locked"] == {"alpha": "2.0.0"}
    replay = [e for e in client.events.watch(received[0].cursor - 2, follow=False) if e.subject.workflow_id == wf]
    assert [e.type for e in replay][:2] == ["EnvironmentCreationStarted", "EnvironmentCreated"]


async def test_async_client(daemon: ThreadDaemon, wf: str) -> None:
    async with AsyncEnvplaneClient(daemon.grpc_addr, timeout=60) as client:
        env = await client.environments.create(wf, "a", packages=["alpha"])
        assert env.status == pb.READY
        assert [e.ref.node_id async for e in client.environments.iter(workflow_id=wf)] == ["a"]
        phases = [p.phase async for p in client.environments.create_stream(wf, "b", packages=["gamma"])]
        assert phases[-1] == "done"
        with pytest.raises(errors.NotFound):
            await client.environments.get(wf, "zzz")


async def test_async_client_retries_unavailable_within_its_deadline() -> None:
    # Attempts for minutes of backoff: only the 1 s deadline can end this early.
    policy = RetryPolicy(max_attempts=1000, initial_backoff=0.05, max_backoff=0.2)
    async with AsyncEnvplaneClient("127.0.0.1:1", timeout=1.0, retry=policy) as client:
        started = time.monotonic()
        with pytest.raises(errors.Unavailable, match=r"gave up after \d+ attempts"):
            await client.environments.get("wf", "n")
        assert 0.7 < time.monotonic() - started < 8


def test_unreachable_daemon_is_unavailable() -> None:
    with EnvplaneClient("127.0.0.1:1", timeout=2) as client, pytest.raises(errors.Unavailable) as info:
        client.environments.get("wf", "n")
    assert "cannot reach the envplane daemon at 127.0.0.1:1" in info.value.message


def test_health_and_reflection(daemon: ThreadDaemon) -> None:
    with grpc.insecure_channel(daemon.grpc_addr) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for name in ("", "envplane.v1.EnvironmentService"):
            reply = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        reply = next(stub.ServerReflectionInfo(iter([request]), timeout=5))
        names = {s.name for s in reply.list_services_response.service}
        assert {"envplane.v1.EnvironmentService", "grpc.health.v1.Health"} <= names
