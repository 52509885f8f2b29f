"""Token auth on both faces, sent by the clients and the CLI from the same settings the daemon
reads; ``/health`` (and gRPC health) stay open; the compat face needs the token like the rest."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import SecretStr

from envplane import errors
from envplane.client import AsyncEnvplaneClient, EnvplaneClient
from envplane.config import Settings
from envplane.envmanager import env_manager_pb2 as em
from envplane.envmanager import env_manager_pb2_grpc as em_grpc
from envplane.v1 import environments_pb2 as pb
from tests.support.daemons import ThreadDaemon
from tests.support.settings import offline_settings

TOKEN = "correct-horse-battery-staple"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path, uv_cache: Path) -> Iterator[ThreadDaemon]:
    settings = offline_settings(tmp_path_factory.mktemp("guarded") / "data", [wheelhouse], uv_cache)
    daemon = ThreadDaemon(settings.model_copy(update={"auth_token": SecretStr(TOKEN)})).start()
    yield daemon
    daemon.stop()


@pytest.fixture(autouse=True)
def no_token_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ENVPLANE_AUTH_TOKEN", "ENVPLANE_AUTH_TOKEN_FILE", "ENVPLANE_CONFIG"):
        monkeypatch.delenv(name, raising=False)


def test_grpc_calls_need_the_token(guarded: ThreadDaemon, wf: str) -> None:
    with EnvplaneClient(guarded.grpc_addr, timeout=30) as anonymous, pytest.raises(errors.Unauthenticated) as info:
        anonymous.environments.list()
    assert "requires a token and the call carried no token" in info.value.message
    with EnvplaneClient(guarded.grpc_addr, timeout=30, token="wrong") as wrong, pytest.raises(errors.Unauthenticated):
        wrong.environments.list()
    with EnvplaneClient(guarded.grpc_addr, timeout=60, token=TOKEN) as client:
        assert client.environments.create(wf, "n", packages=["alpha"]).status == pb.READY
        assert [e.subject.id for e in client.events.watch(follow=False, kinds=["environment"])][-1] == f"{wf}/n"


async def test_the_async_client_sends_the_token_from_the_environment(
    guarded: ThreadDaemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENVPLANE_AUTH_TOKEN", TOKEN)
    async with AsyncEnvplaneClient(guarded.grpc_addr, timeout=30) as client:
        assert (await client.environments.list()).total >= 0


def test_a_token_file_serves_both_sides(
    tmp_path: Path, wheelhouse: Path, uv_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(f"{TOKEN}\n")
    settings = offline_settings(tmp_path / "data", [wheelhouse], uv_cache, auth_token_file=token_file)
    daemon = ThreadDaemon(settings).start()
    try:
        monkeypatch.setenv("ENVPLANE_AUTH_TOKEN_FILE", str(token_file))
        with EnvplaneClient(daemon.grpc_addr, timeout=30) as client:
            assert client.operations.list().total == 0
    finally:
        daemon.stop()


def test_grpc_health_stays_open_and_reflection_does_not(guarded: ThreadDaemon) -> None:
    with grpc.insecure_channel(guarded.grpc_addr) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        stub = em_grpc.EnvManagerServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.GetEnvStatus(em.GetEnvStatusRequest(workflow_id="wf", node_id="n"), timeout=10)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        metadata = (("authorization", f"Bearer {TOKEN}"),)
        assert (
            stub.GetEnvStatus(
                em.GetEnvStatusRequest(workflow_id="wf", node_id="n"), timeout=10, metadata=metadata
            ).status
            == "NOT_EXISTS"
        )


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/health", {}, 200),
        ("/docs", {}, 200),
        ("/openapi.json", {}, 200),
        ("/v1/environments", {}, 401),
        ("/v1/environments", {"Authorization": "Bearer wrong"}, 401),
        ("/v1/environments", {"Authorization": TOKEN}, 401),
        ("/v1/environments", {"Authorization": f"Bearer {TOKEN}"}, 200),
        ("/metrics", {}, 401),
        ("/metrics", {"Authorization": f"Bearer {TOKEN}"}, 200),
        ("/v1/events?follow=false", {}, 401),
    ],
)
def test_rest_routes_need_the_token_but_health_and_docs(
    guarded: ThreadDaemon, path: str, headers: dict[str, str], status: int
) -> None:
    response = httpx.get(f"{guarded.http_url}{path}", headers=headers, timeout=30)
    assert response.status_code == status, response.text
    if status == 401:
        assert response.json()["error"]["code"] == "UNAUTHENTICATED"
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_the_cli_sends_the_token_from_its_environment(guarded: ThreadDaemon) -> None:
    def cli(**env: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "envplane", "env", "list", "--json"],
            env={**os.environ, "ENVPLANE_GRPC_ADDR": guarded.grpc_addr, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )

    refused = cli()
    assert refused.returncode == 8 and "requires a token" in refused.stderr
    assert cli(ENVPLANE_AUTH_TOKEN=TOKEN).returncode == 0


def test_settings_refuse_both_token_sources_and_an_empty_token(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not both"):
        Settings(auth_token="a", auth_token_file=tmp_path / "t")
    with pytest.raises(ValueError, match="ENVPLANE_AUTH_TOKEN is empty"):
        Settings(auth_token="  ")
