"""What is particular to each provider: retries and deadlines (gRPC), data-dir ownership and
persistence (local), recorded calls and scripted failures (the in-memory double)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from envplane.config import Settings
from envplane.core.audit import OperationFilter
from envplane.errors import FailedPrecondition, ResolutionFailed, Unavailable
from envplane.providers import (
    GrpcEnvironmentProvider,
    InMemoryEnvironmentProvider,
    LocalEnvironmentProvider,
    ProviderCall,
    RetryPolicy,
)
from tests.support.daemons import ThreadDaemon
from tests.support.processes import free_port


def test_grpc_provider_retries_until_a_late_daemon_answers(plane_settings: Callable[[str], Settings], wf: str) -> None:
    port = free_port()
    settings = plane_settings("late-daemon").model_copy(update={"grpc_addr": f"127.0.0.1:{port}"})
    late = ThreadDaemon(settings)
    starter = threading.Timer(1.0, late.start)
    with GrpcEnvironmentProvider(f"127.0.0.1:{port}", timeout=60, retry=RetryPolicy(max_attempts=30)) as provider:
        started = time.monotonic()
        starter.start()
        try:
            info = provider.create_environment("v", {"workflow_id": wf, "node_id": "n", "packages": ["alpha"]})
        finally:
            starter.join()
        assert info.locked == {"alpha": "2.0.0"}
        assert time.monotonic() - started >= 1.0, "the first attempts found no daemon"
    late.stop()


def test_grpc_provider_gives_up_at_its_deadline(wf: str) -> None:
    # Attempts enough for minutes of backoff: only the 1.5 s deadline can end this early.
    policy = RetryPolicy(max_attempts=1000, max_backoff=0.5)
    with GrpcEnvironmentProvider(f"127.0.0.1:{free_port()}", timeout=1.5, retry=policy) as provider:
        started = time.monotonic()
        with pytest.raises(Unavailable, match=r"cannot reach the envplane daemon .*gave up after \d+ attempts"):
            provider.create_environment("v", {"workflow_id": wf, "node_id": "n"})
        assert 0.5 < time.monotonic() - started < 30


def test_grpc_provider_without_retries_fails_at_once(wf: str) -> None:
    with GrpcEnvironmentProvider(f"127.0.0.1:{free_port()}", retry=RetryPolicy(max_attempts=1)) as provider:
        with pytest.raises(Unavailable) as info:
            provider.create_environment("v", {"workflow_id": wf, "node_id": "n"})
        assert "attempts" not in info.value.message, "one attempt, no retry loop"


def test_a_data_dir_has_one_owner(plane_daemon: ThreadDaemon, plane_settings: Callable[[str], Settings]) -> None:
    with pytest.raises(FailedPrecondition, match=r"is in use by an envplane daemon \(pid \d+\)"):
        LocalEnvironmentProvider(settings=plane_daemon.settings)
    settings = plane_settings("owned")
    with (
        LocalEnvironmentProvider(settings=settings),
        pytest.raises(FailedPrecondition, match=r"in use by a LocalEnvironmentProvider"),
    ):
        ThreadDaemon(settings).start()
    ThreadDaemon(settings).start().stop()  # released on close


def test_local_provider_keeps_envs_across_instances(plane_settings: Callable[[str], Settings], wf: str) -> None:
    settings = plane_settings("persist")
    config = {"workflow_id": wf, "node_id": "n", "packages": ["gamma==0.1.0"]}
    with LocalEnvironmentProvider(settings=settings) as first:
        made = first.create_environment("v", config)
    with LocalEnvironmentProvider(settings=settings) as second:
        again = second.create_environment("v", config)
        where = OperationFilter(workflow_id=wf, operation="create")
        creates = second._run(second.core.activity.operations(where))
        assert creates.total == 1, "the env is reused, not created again"
    assert (again.lock_hash, again.python_executable) == (made.lock_hash, made.python_executable)


def test_in_memory_double_records_calls_and_scripts_failures(wf: str) -> None:
    double = InMemoryEnvironmentProvider(failures={"bad": ResolutionFailed("no version of nothing-here")})
    config = {"workflow_id": wf, "node_id": "n", "packages": ["alpha==1.0.0"]}
    double.create_environment("good", config)
    with pytest.raises(ResolutionFailed, match="nothing-here"):
        double.create_environment("bad", {**config, "version_id": "b"})
    double.get_runtime_env("good", check_ray=False)
    double.cleanup_environment("good")
    assert [(c.method, c.variant_id) for c in double.calls] == [
        ("create_environment", "good"),
        ("create_environment", "bad"),
        ("get_runtime_env", "good"),
        ("cleanup_environment", "good"),
    ]
    assert isinstance(double.calls[0], ProviderCall) and double.calls[0].config is not None
    assert double.calls[0].config.packages == ("alpha==1.0.0",)
