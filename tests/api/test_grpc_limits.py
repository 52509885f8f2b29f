"""What a gRPC status can carry, and what grpcio does with bytes that are not a request.

A status travels in trailers, which grpcio caps (8 KiB soft, 16 KiB hard): an error with 20 KiB
of uv output must still arrive as its own status, its detail cut, the whole of it in the audit
record the trailer names. Bytes that do not parse as the request are INVALID_ARGUMENT with one
log line, not UNKNOWN with a traceback per call.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator

import grpc
import httpx
import pytest

from envplane import errors
from envplane.api.grpc_errors import MAX_STATUS_BYTES, wire_size
from envplane.client import EnvplaneClient
from tests.conftest import NOISY_BYTES
from tests.support.daemons import ThreadDaemon


@pytest.fixture
def client(daemon: ThreadDaemon) -> Iterator[EnvplaneClient]:
    with EnvplaneClient(daemon.grpc_addr, timeout=120) as c:
        yield c


def test_an_error_with_20_kib_of_output_keeps_its_status(client: EnvplaneClient, wf: str) -> None:
    with pytest.raises(errors.ResolutionFailed) as info:
        client.environments.create(wf, "noisy", packages=["noisy"])
    error = info.value
    assert error.__cause__.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[union-attr]
    assert "noisy" in error.message
    assert wire_size(error.message + "\n" + error.detail) <= MAX_STATUS_BYTES
    assert "this package never builds" in error.detail, "the end of uv's output, where the error is, is kept"
    assert f"the whole output is in the audit record of operation {error.operation_id}" in error.detail
    record = client.operations.get(error.operation_id)
    assert record.status == "FAILED" and record.stderr.count("noise line") >= NOISY_BYTES // 100


def test_the_same_error_over_rest_carries_the_whole_detail(daemon: ThreadDaemon, wf: str) -> None:
    body = {"workflow_id": wf, "node_id": "noisy", "packages": ["noisy"]}
    response = httpx.post(f"{daemon.http_url}/v1/environments", json=body, timeout=120)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "INVALID_ARGUMENT" and error["detail"].count("noise line") >= NOISY_BYTES // 100


def test_the_cli_exits_2_and_names_the_audit_record(daemon: ThreadDaemon, wf: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "envplane", "env", "create", wf, "noisy", "-p", "noisy"],
        env={**os.environ, "ENVPLANE_GRPC_ADDR": daemon.grpc_addr},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "envplane ops show" in result.stderr


def test_a_huge_page_token_is_invalid_argument_not_resource_exhausted(client: EnvplaneClient) -> None:
    with pytest.raises(errors.InvalidArgument) as info:
        client.environments.list(page_token="x" * 100_000)
    assert info.value.__cause__.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "method",
    [
        "/envplane.v1.EnvironmentService/GetEnvStatus",
        "/envplane.v1.EnvironmentService/CreateEnvStream",
        "/envplane.v1.OperationService/ListOperations",
        "/envmanager.EnvManagerService/CreateEnv",
    ],
)
def test_malformed_request_bytes_are_invalid_argument_with_one_log_line(
    daemon: ThreadDaemon, method: str, caplog: pytest.LogCaptureFixture
) -> None:
    with grpc.insecure_channel(daemon.grpc_addr) as channel:
        streaming = method.endswith("Stream")
        call = (channel.unary_stream if streaming else channel.unary_unary)(method)
        caplog.clear()
        with caplog.at_level(logging.WARNING), pytest.raises(grpc.RpcError) as info:
            reply = call(b"\xff\xff\xff\xff\x0f", timeout=10)
            if streaming:
                list(reply)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "is not a valid protobuf message" in info.value.details()
    ours = [r for r in caplog.records if method in r.getMessage()]
    assert len(ours) == 1 and ours[0].exc_info is None, "one line, no traceback"
    assert not [r for r in caplog.records if r.exc_info], json.dumps([r.getMessage() for r in caplog.records])
