"""``envplane serve`` as a user starts it: ports that are taken, addresses off loopback, the
data dir's owner, and the lifecycle (start-up awaited, shutdown repeat-safe)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from envplane.config import Settings
from envplane.server import Daemon, DaemonState
from tests.support.daemons import ThreadDaemon
from tests.support.processes import free_port, port_listening
from tests.support.settings import as_environment, offline_settings

pytestmark = pytest.mark.slow


@pytest.fixture
def settings(tmp_path: Path, wheelhouse: Path, uv_cache: Path) -> Settings:
    return offline_settings(tmp_path / "data", [wheelhouse], uv_cache)


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def serve(settings: Settings, **overrides: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **as_environment(settings), **overrides}
    return subprocess.run(
        [sys.executable, "-m", "envplane", "serve"], env=env, capture_output=True, text=True, timeout=60
    )


def test_a_taken_http_port_exits_1_and_leaves_nothing_behind(settings: Settings, taken_port: int) -> None:
    grpc_port = free_port()
    result = serve(settings, ENVPLANE_HTTP_ADDR=f"127.0.0.1:{taken_port}", ENVPLANE_GRPC_ADDR=f"127.0.0.1:{grpc_port}")
    assert result.returncode == 1, result.stderr
    assert f"cannot listen for HTTP on 127.0.0.1:{taken_port}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not port_listening(grpc_port), "gRPC is not left listening"
    ThreadDaemon(settings).start().stop()  # the data dir was released


def test_a_taken_grpc_port_exits_1_with_the_projects_message(settings: Settings, taken_port: int) -> None:
    result = serve(settings, ENVPLANE_GRPC_ADDR=f"127.0.0.1:{taken_port}")
    assert result.returncode == 1, result.stderr
    assert f"cannot listen for gRPC on 127.0.0.1:{taken_port}" in result.stderr
    assert "Traceback" not in result.stderr and "RuntimeError" not in result.stderr
    ThreadDaemon(settings).start().stop()


def test_an_address_without_host_is_loopback(settings: Settings) -> None:
    daemon = ThreadDaemon(settings.model_copy(update={"grpc_addr": ":0", "http_addr": ":0"})).start()
    try:
        assert daemon.daemon is not None and port_listening(daemon.daemon.grpc_port)
    finally:
        daemon.stop()


def test_listening_off_loopback_needs_a_token(settings: Settings) -> None:
    result = serve(settings, ENVPLANE_GRPC_ADDR="0.0.0.0:0")
    assert result.returncode == 1
    assert "refusing to listen on 0.0.0.0:0 (ENVPLANE_GRPC_ADDR)" in result.stderr
    assert "ENVPLANE_AUTH_TOKEN" in result.stderr and "ENVPLANE_ALLOW_INSECURE_BIND" in result.stderr
    for update in ({"auth_token": SecretStr("s3cret")}, {"allow_insecure_bind": True}):
        daemon = ThreadDaemon(settings.model_copy(update={"http_addr": "0.0.0.0:0", **update})).start()
        daemon.stop()


def test_a_token_file_that_is_missing_is_named(settings: Settings, tmp_path: Path) -> None:
    result = serve(settings, ENVPLANE_AUTH_TOKEN_FILE=str(tmp_path / "nope"))
    assert result.returncode == 1
    assert f"ENVPLANE_AUTH_TOKEN_FILE names '{tmp_path / 'nope'}', which cannot be read" in result.stderr


async def test_lifecycle_states_and_a_repeat_safe_shutdown(settings: Settings) -> None:
    daemon = Daemon(settings)
    assert daemon.state == DaemonState.CREATED
    run = asyncio.ensure_future(daemon.run(install_signal_handlers=False))
    await asyncio.wait_for(daemon.serving(), 30)
    assert daemon.state == DaemonState.SERVING
    assert [c.name for c in daemon.capabilities] == ["activity", "environments", "workers", "observations", "services"]
    assert daemon.health()["state"] == "serving"
    daemon.request_stop()
    await asyncio.wait_for(run, 30)
    assert daemon.state == DaemonState.STOPPED
    await daemon.shutdown()  # again: nothing happens
    assert daemon.state == DaemonState.STOPPED
    assert not port_listening(daemon.grpc_port) and not port_listening(daemon.http_port)
    assert not (settings.data_dir / "daemon.json").exists()


async def test_a_failed_start_up_unwinds_what_it_started(settings: Settings, taken_port: int) -> None:
    daemon = Daemon(settings.model_copy(update={"grpc_addr": f"127.0.0.1:{taken_port}"}))
    with pytest.raises(OSError, match="cannot listen for gRPC"):
        await daemon.startup()
    assert daemon.state == DaemonState.STOPPED
    assert not port_listening(daemon.http_port), "the HTTP socket bound first is closed again"
    ThreadDaemon(settings).start().stop()
