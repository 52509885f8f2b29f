"""kill -9 the daemon in the middle of operations, restart it, and check it tells the truth."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from envplane import errors
from envplane.client import EnvplaneClient
from envplane.v1 import environments_pb2 as pb
from tests.support.daemons import ProcessDaemon
from tests.support.envcheck import importable, snapshot, version_in_env
from tests.support.processes import port_listening, process_running
from tests.support.settings import as_environment, offline_settings
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow


@pytest.fixture
def process_daemon(tmp_path: Path, wheelhouse: Path, uv_cache: Path) -> Iterator[ProcessDaemon]:
    settings = offline_settings(tmp_path / "data", [wheelhouse], uv_cache, log_level="info")
    settings.data_dir.mkdir()
    daemon = ProcessDaemon(as_environment(settings), settings.data_dir)
    yield daemon
    if daemon.proc is not None and daemon.proc.poll() is None:
        daemon.stop()  # a test that failed half-way still leaves no daemon behind


def _in_background(call: Callable[[], object]) -> threading.Thread:
    def run() -> None:
        try:
            call()
        except errors.EnvplaneError:
            pass  # the daemon dies under the call: Unavailable/Internal is expected

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _wait_for_running(client: EnvplaneClient, operation: str) -> None:
    def running() -> bool:
        return any(o.operation == operation for o in client.operations.list(status="RUNNING").operations)

    eventually(running, what=f"a RUNNING {operation} operation")


def _wait_for_uv(data_dir: Path) -> None:
    eventually(lambda: list(data_dir.joinpath("run").glob("uv-*")), what="uv to start (its run/ marker)")


def _uv_in(data_dir: Path) -> list[str]:
    """The uv processes working in the data dir."""
    busy = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if "uv" in cmd and cwd.startswith(str(data_dir)):
            busy.append(pid)
    return busy


def _uv_children_gone(data_dir: Path) -> bool:
    """No process is left working in the data dir (uv is killed with its group)."""
    eventually(lambda: not _uv_in(data_dir), timeout=10, what="the dead daemon's uv to be killed")
    return True


def test_kill9_mid_create_then_restart(process_daemon: ProcessDaemon, slow_package: Callable[[float], str]) -> None:
    daemon = process_daemon.start()
    slow = slow_package(20.0)
    with EnvplaneClient(daemon.grpc_addr, timeout=120) as client:
        client.environments.create("wf", "ok", packages=["alpha<2"])
        _in_background(lambda: client.environments.create("wf", "victim", packages=[slow]))
        _wait_for_running(client, "create")
        assert client.environments.get("wf", "victim").status == pb.CREATING
        _wait_for_uv(daemon.data_dir)  # the operation is RUNNING a moment before uv starts
        # Inside the block: closing the client would cancel the call, and the daemon would
        # then stop uv itself before the kill -9 (a race the test lost now and then).
        daemon.kill9()
    assert any(daemon.data_dir.joinpath("tmp").iterdir()), "the create was staging in tmp/"
    orphans = list(daemon.data_dir.joinpath("run").glob("uv-*"))
    assert orphans, "the running uv group was recorded"
    assert Path(f"/proc/{orphans[0].name.removeprefix('uv-')}").exists(), "uv outlived the daemon"
    daemon.start()
    assert _uv_children_gone(daemon.data_dir), "the restart killed the dead daemon's uv"
    left = {m.name for m in daemon.data_dir.joinpath("run").glob("uv-*")}  # the new daemon may run uv already
    assert not left & {o.name for o in orphans}, "the dead daemon's markers are gone"
    with EnvplaneClient(daemon.grpc_addr, timeout=60) as client:
        victim = client.environments.get("wf", "victim")
        assert victim.status == pb.FAILED and "interrupted" in victim.error
        assert not victim.has_pyproject and not victim.has_venv
        assert not Path(victim.env_path).exists()
        ok = client.environments.get("wf", "ok")
        assert ok.status == pb.READY and version_in_env(ok.python_executable, "alpha") == "1.1.0"
        failed = client.operations.list(status="FAILED").operations
        assert [(o.operation, o.subject.node_id) for o in failed] == [("create", "victim")]
        assert "interrupted" in failed[0].error and failed[0].finished_at > 0
        assert client.operations.list(status="RUNNING").total == 0
        assert not any(daemon.data_dir.joinpath("tmp").iterdir()), "staging removed at start-up"
        events = [e.type for e in client.events.watch(0, follow=False) if e.subject.node_id == "victim"]
        assert events == ["EnvironmentCreationStarted", "EnvironmentCreationFailed"]
        again = client.environments.create("wf", "victim", packages=["gamma"])
        assert again.status == pb.READY
    assert daemon.stop() == 0


def test_kill9_mid_add_keeps_the_previous_state(
    process_daemon: ProcessDaemon, slow_package: Callable[[float], str]
) -> None:
    daemon = process_daemon.start()
    slow = slow_package(20.0)
    with EnvplaneClient(daemon.grpc_addr, timeout=120) as client:
        env = client.environments.create("wf", "n", packages=["alpha<2"])
        before = snapshot(env.env_path)
        _in_background(lambda: client.environments.add_deps("wf", "n", [slow]))
        _wait_for_running(client, "add")
        _wait_for_uv(daemon.data_dir)
        daemon.kill9()  # before the client closes (which would cancel the add)
    daemon.start()
    with EnvplaneClient(daemon.grpc_addr, timeout=60) as client:
        after = client.environments.get("wf", "n")
        assert after.status == pb.READY and list(after.dependencies) == ["alpha<2"]
        assert snapshot(after.env_path) == before
        assert version_in_env(after.python_executable, "alpha") == "1.1.0"
        assert not importable(after.python_executable, slow)
        op = client.operations.list(operation="add").operations[0]
        assert op.status == "FAILED" and "interrupted" in op.error
        builds = sorted(p.name for p in daemon.data_dir.joinpath("builds").iterdir())
        assert builds == [after.build_id], "only the referenced build is kept"
        added = client.environments.add_deps("wf", "n", ["gamma"])
        assert added.environment.status == pb.READY
    daemon.stop()


def test_restart_repairs_disk_drift(process_daemon: ProcessDaemon) -> None:
    """What a crash between file writes could leave: each kind of drift is put right."""
    daemon = process_daemon.start()
    with EnvplaneClient(daemon.grpc_addr, timeout=60) as client:
        good = client.environments.create("wf", "good", packages=["alpha<2"])
        gone = client.environments.create("wf", "gone", packages=["gamma"])
    daemon.stop()
    data = daemon.data_dir
    expected = snapshot(good.env_path)
    Path(good.env_path, "uv.lock").write_text("half-written")
    os.unlink(Path(good.env_path, ".venv"))
    (data / "projects" / "wf" / "orphan" / "_").mkdir(parents=True)
    (data / "builds" / "deadbeef").mkdir()  # a build that never completed
    import shutil

    shutil.rmtree(data / "builds" / gone.build_id)
    daemon.start()
    with EnvplaneClient(daemon.grpc_addr, timeout=60) as client:
        repaired = client.environments.get("wf", "good")
        assert repaired.status == pb.READY and snapshot(repaired.env_path) == expected
        broken = client.environments.get("wf", "gone")
        assert broken.status == pb.BROKEN and "run sync" in broken.error
        assert broken.has_pyproject and broken.has_uv_lock and not broken.has_venv
        assert not (data / "projects" / "wf" / "orphan").exists()
        assert not (data / "builds" / "deadbeef").exists()
        assert client.environments.sync("wf", "gone").environment.status == pb.READY
        assert version_in_env(broken.python_executable, "gamma") == "0.2.0"
    daemon.stop()


def test_sigterm_stops_cleanly(process_daemon: ProcessDaemon) -> None:
    daemon = process_daemon.start()
    grpc_port = int(daemon.grpc_addr.rpartition(":")[2])
    http_port = int(daemon.http_url.rpartition(":")[2])
    assert daemon.stop() == 0
    assert daemon.log().rstrip().endswith("envplane stopped"), daemon.log()[-500:]
    assert not (daemon.data_dir / "daemon.json").exists()
    assert not port_listening(grpc_port) and not port_listening(http_port), "nothing left listening"


def test_kill9_mid_run_code_kills_the_users_code_on_restart(process_daemon: ProcessDaemon, tmp_path: Path) -> None:
    """RunCode (the compat face) runs users' code in a recorded process group, like uv."""
    from envplane.envmanager import env_manager_pb2 as em
    from envplane.envmanager import env_manager_pb2_grpc as em_grpc

    daemon = process_daemon.start()
    pid_file = tmp_path / "code.pid"
    with EnvplaneClient(daemon.grpc_addr, timeout=120) as client:
        client.environments.create("wf", "runner")
    stub = em_grpc.EnvManagerServiceStub(grpc.insecure_channel(daemon.grpc_addr))
    code = f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(300)\n"

    def run_code() -> None:
        try:
            stub.RunCode(em.RunCodeRequest(workflow_id="wf", node_id="runner", code=code))
        except grpc.RpcError:
            pass  # the daemon dies under the call

    _in_background(run_code)
    pid = int(eventually(lambda: pid_file.exists() and pid_file.read_text(), what="the code to start"))
    daemon.kill9()
    assert Path(f"/proc/{pid}").exists(), "the code outlived the daemon"
    assert [m.name for m in daemon.data_dir.joinpath("run").glob("code-*")] == [f"code-{pid}"]
    daemon.start()
    assert _gone(pid), "the restart killed the dead daemon's RunCode process"
    with EnvplaneClient(daemon.grpc_addr, timeout=60) as client:
        (run,) = client.operations.list(workflow_id="wf", operation="run").operations
        assert run.status == "FAILED" and "interrupted" in run.error
    daemon.stop()


def _gone(pid: int) -> bool:
    return eventually(lambda: not process_running(pid), timeout=10, what=f"process {pid} to end")
