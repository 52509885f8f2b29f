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
from tests.support.daemons import ThreadDaemon
from tests.support.envcheck import version_in_env


@pytest.fixture
def client(daemon: ThreadDaemon) -> EnvplaneClient:
    with EnvplaneClient(daemon.grpc_addr, timeout=60) as c:
        yield c  # type: ignore[misc]


def test_full_lifecycle(client: EnvplaneClient, wf: str) -> None:
    env = client.create_env(wf, "rag", packages=["alpha<2"], python_version="3.11")
    assert env.status == pb.READY and env.python_version.startswith("3.11")
    assert version_in_env(env.python_executable, "alpha") == "1.1.0"
    assert client.get_env(wf, "rag").build_id == env.build_id
    again = client.create_env(wf, "rag", packages=["alpha<2"], python_version="3.11", exist_ok=True)
    assert again.lock_sha256 == env.lock_sha256 and len(env.lock_sha256) == 64

    added = client.add_deps(wf, "rag", ["gamma==0.1.0"])
    assert [(c.name, c.old_version, c.new_version) for c in added.changes] == [("gamma", "", "0.1.0")]
    assert added.operation.status == "SUCCEEDED" and added.operation.exit_code == 0

    updated = client.update_deps(wf, "rag", ["gamma>=0.2"])
    assert [(c.name, c.new_version) for c in updated.changes] == [("gamma", "0.2.0")]

    deps = client.list_deps(wf, "rag")
    assert list(deps.declared) == ["alpha<2", "gamma>=0.2"]
    assert {p.name: p.version for p in deps.locked} == {"alpha": "1.1.0", "gamma": "0.2.0"}

    removed = client.remove_deps(wf, "rag", ["gamma"])
    assert [(c.name, c.new_version) for c in removed.changes] == [("gamma", "")]

    synced = client.sync_env(wf, "rag")
    assert synced.environment.status == pb.READY and synced.operation.operation == "sync"

    exported = client.export_env(wf, "rag")
    assert "alpha==1.1.0" in exported.requirements_txt and "[[package]]" in exported.uv_lock

    listed = client.list_envs(workflow_id=wf)
    assert [e.ref.node_id for e in listed.environments] == ["rag"] and listed.total == 1

    ops = client.get_operations(wf)
    assert [o.operation for o in ops.operations] == ["sync", "remove", "update", "add", "create"]
    assert json.loads(ops.operations[2].metadata_json)["changes"] == {"gamma": ["0.1.0", "0.2.0"]}

    deleted = client.delete_env(wf, "rag")
    assert deleted.operation.operation == "delete"
    with pytest.raises(errors.NotFound):
        client.get_env(wf, "rag")
    assert client.delete_operations(wf).deleted_count == 6


def test_versions_and_pagination(client: EnvplaneClient, wf: str) -> None:
    for version in ("v1", "v2", "v3"):
        client.create_env(wf, "node", version, packages=["alpha"])
    first = client.list_envs(workflow_id=wf, page_size=2)
    assert [e.ref.version_id for e in first.environments] == ["v1", "v2"] and first.next_page_token
    assert [e.ref.version_id for e in client.iter_envs(workflow_id=wf)] == ["v1", "v2", "v3"]
    assert client.list_envs(workflow_id=wf, status="READY").total == 3
    page = client.get_operations(wf, page_size=1)
    assert page.total == 3 and len(page.operations) == 1 and page.next_page_token


@pytest.mark.parametrize(
    ("call", "error", "code", "fragment"),
    [
        (
            lambda c, wf: c.get_env("../x", "n"),
            errors.InvalidArgument,
            grpc.StatusCode.INVALID_ARGUMENT,
            "workflow_id",
        ),
        (
            lambda c, wf: c.create_env(wf, "n", packages=["--index-url=x"]),
            errors.InvalidArgument,
            grpc.StatusCode.INVALID_ARGUMENT,
            "packages[0]",
        ),
        (
            lambda c, wf: c.create_env(wf, "n", python_version="3.4"),
            errors.InvalidArgument,
            grpc.StatusCode.INVALID_ARGUMENT,
            "python_version '3.4'",
        ),
        (
            lambda c, wf: c.create_env(wf, "n", packages=["broken"]),
            errors.InvalidArgument,
            grpc.StatusCode.INVALID_ARGUMENT,
            "does-not-exist",
        ),
        (
            lambda c, wf: c.get_env(wf, "missing"),
            errors.NotFound,
            grpc.StatusCode.NOT_FOUND,
            "does not exist",
        ),
        (
            lambda c, wf: c.delete_env(wf, "missing"),
            errors.NotFound,
            grpc.StatusCode.NOT_FOUND,
            "does not exist",
        ),
        (lambda c, wf: c.cleanup(0), errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT, "idle_hours"),
        (
            lambda c, wf: c.list_envs(page_token="zzz"),
            errors.InvalidArgument,
            grpc.StatusCode.INVALID_ARGUMENT,
            "page_token",
        ),
        (
            lambda c, wf: c.get_operations(status="weird"),
            errors.InvalidArgument,
            grpc.StatusCode.INVALID_ARGUMENT,
            "status 'WEIRD'",
        ),
    ],
)
def test_error_mapping(client: EnvplaneClient, wf: str, call, error, code, fragment) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error) as info:
        call(client, wf)
    assert fragment in str(info.value)
    assert info.value.__cause__.code() == code


def test_already_exists_busy_and_deadline(
    client: EnvplaneClient, wf: str, slow_package: Callable[[float], str]
) -> None:
    client.create_env(wf, "n", packages=["alpha"])
    with pytest.raises(errors.AlreadyExists) as info:
        client.create_env(wf, "n", packages=["alpha"])
    assert info.value.__cause__.code() == grpc.StatusCode.ALREADY_EXISTS
    slow = slow_package(2.0)
    worker = threading.Thread(target=client.add_deps, args=(wf, "n", [slow]))
    worker.start()
    for _ in range(300):
        if client.get_env(wf, "n").busy_with:
            break
        time.sleep(0.01)
    with pytest.raises(errors.EnvBusy) as busy:
        client.add_deps(wf, "n", ["gamma"], fail_if_busy=True)
    assert busy.value.__cause__.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(errors.DeadlineExceeded) as late:
        client.sync_env(wf, "n", timeout=0.5)
    assert late.value.__cause__.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    worker.join(30)
    assert slow in " ".join(client.get_env(wf, "n").dependencies)


def test_streaming_create_reports_phases_and_the_final_env(client: EnvplaneClient, wf: str) -> None:
    items = list(client.create_env_stream(wf, "s", packages=["beta"]))
    phases = [i.phase for i in items]
    assert phases[0] == "validate" and phases[-1] == "done"
    assert {"resolve", "install", "uv"} <= set(phases)
    assert any("Installed" in i.message for i in items if i.phase == "uv")
    assert items[-1].environment.status == pb.READY
    with pytest.raises(errors.AlreadyExists):
        list(client.create_env_stream(wf, "s", packages=["beta"]))
    reused = list(client.create_env_stream(wf, "s", packages=["beta"], exist_ok=True))
    assert "reusing it" in reused[-1].message and reused[-1].environment.build_id == items[-1].environment.build_id


def test_watch_events_follows_live_and_resumes(client: EnvplaneClient, wf: str, daemon: ThreadDaemon) -> None:
    start = max((e.cursor for e in client.watch_events(0, follow=False)), default=0)
    received: list[pb.Event] = []

    def follow() -> None:
        with EnvplaneClient(daemon.grpc_addr) as watcher:
            for event in watcher.watch_events(start, types=["EnvironmentCreated", "EnvironmentDeleted"]):
                if event.ref.workflow_id == wf:
                    received.append(event)
                if len(received) == 2:
                    return

    thread = threading.Thread(target=follow)
    thread.start()
    time.sleep(0.3)
    client.create_env(wf, "w", packages=["alpha"])
    client.delete_env(wf, "w")
    thread.join(30)
    assert [e.type for e in received] == ["EnvironmentCreated", "EnvironmentDeleted"]
    assert json.loads(received[0].payload_json)["locked"] == {"alpha": "2.0.0"}
    replay = [e for e in client.watch_events(received[0].cursor - 2, follow=False) if e.ref.workflow_id == wf]
    assert [e.type for e in replay][:2] == ["EnvironmentCreationStarted", "EnvironmentCreated"]


async def test_async_client(daemon: ThreadDaemon, wf: str) -> None:
    async with AsyncEnvplaneClient(daemon.grpc_addr, timeout=60) as client:
        env = await client.create_env(wf, "a", packages=["alpha"])
        assert env.status == pb.READY
        assert [e.ref.node_id async for e in client.iter_envs(workflow_id=wf)] == ["a"]
        phases = [p.phase async for p in client.create_env_stream(wf, "b", packages=["gamma"])]
        assert phases[-1] == "done"
        with pytest.raises(errors.NotFound):
            await client.get_env(wf, "zzz")


async def test_async_client_retries_unavailable_within_its_deadline() -> None:
    # Attempts for minutes of backoff: only the 1 s deadline can end this early.
    policy = RetryPolicy(max_attempts=1000, initial_backoff=0.05, max_backoff=0.2)
    async with AsyncEnvplaneClient("127.0.0.1:1", timeout=1.0, retry=policy) as client:
        started = time.monotonic()
        with pytest.raises(errors.Unavailable, match=r"gave up after \d+ attempts"):
            await client.get_env("wf", "n")
        assert 0.7 < time.monotonic() - started < 8


def test_unreachable_daemon_is_unavailable() -> None:
    with EnvplaneClient("127.0.0.1:1", timeout=2) as client, pytest.raises(errors.Unavailable) as info:
        client.get_env("wf", "n")
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
