"""The earlier plugin's code, unchanged, against envplane's AiServer: the seed's pattern
(AiServer + send_task_observation + future.result()), every field mapped, clear errors, one
channel per address, and decisions that follow the evidence."""

from __future__ import annotations

import datetime
import json
import uuid
from pathlib import Path

import grpc
import pytest

from envplane.errors import InvalidArgument
from envplane.observations import ai_comms
from envplane.observations.ai_comms import AiCommsClient, AiServer, observation_message, send_task_observation
from tests.support.processes import free_port

MB = 1024 * 1024


def observation(**fields: object) -> dict[str, object]:
    data: dict[str, object] = {
        "event_id": str(uuid.uuid4()),
        "event_type": "task_complete",
        "timestamp_iso": datetime.datetime.now(datetime.UTC).isoformat() + "Z",
        "pipeline_name": "my_pipeline",
        "process_name": "my_process",
        "task_id_num": 123,
        "task_hash": "xxxyyyzzz",
        "task_name": "my_process (1)",
        "native_id": "slurm_12345",
        "status": "COMPLETED",
        "exit_code": 0,
        "duration_ms": 50000,
        "realtime_ms": 52000,
        "cpu_percent": "150.0%",
        "peak_rss_bytes": 200 * MB,
        "peak_vmem_bytes": 500 * MB,
        "read_bytes": 10 * 1024,
        "write_bytes": 5 * 1024,
    }
    data.update(fields)
    return data


@pytest.fixture
def server(tmp_path: Path) -> object:
    running = AiServer(port=free_port(), log_file=str(tmp_path / "ai_server.log"))
    running.start()
    yield running
    running.stop(0)
    ai_comms.close_all()


def test_the_seeds_pattern_works_unchanged(server: AiServer, tmp_path: Path) -> None:
    data = observation()
    future = send_task_observation(data, server_address=f"localhost:{server.port}")
    action = future.result(timeout=10)
    assert action.observation_event_id == data["event_id"] and action.success and action.action_id
    details = json.loads(action.action_details)
    assert details["kind"] == "RIGHT_SIZE" and details["memory_bytes"] == 200 * MB
    seen: list[object] = []
    send_task_observation(observation(), server_address=f"localhost:{server.port}").add_done_callback(seen.append)
    for _ in range(100):
        if seen:
            break
        __import__("time").sleep(0.05)
    assert seen and seen[0].result().success  # type: ignore[attr-defined]
    assert "my_process" in (tmp_path / "ai_server.log").read_text()


def test_decisions_follow_the_evidence(server: AiServer) -> None:
    address = f"localhost:{server.port}"
    for i, peak in enumerate([100, 110, 105, 120, 115, 108, 112]):
        send_task_observation(observation(task_id_num=i, peak_rss_bytes=peak * MB), address).result(timeout=10)
    oom = json.loads(
        send_task_observation(observation(status="FAILED", exit_code=137, peak_rss_bytes=118 * MB), address)
        .result(timeout=10)
        .action_details
    )
    assert oom["kind"] == "RETRY_WITH_RESOURCES" and oom["memory_bytes"] >= 120 * MB  # the evidence, not a blind ×2
    assert oom["memory_bytes"] < 2 * 118 * MB
    tool = send_task_observation(observation(status="FAILED", exit_code=1), address).result(timeout=10)
    assert json.loads(tool.action_details)["kind"] == "FAIL" and "not a memory failure" in tool.message
    started = send_task_observation(observation(status="SUBMITTED", event_type="task_submit"), address).result(10)
    assert json.loads(started.action_details)["kind"] == "NONE"


def test_every_field_is_mapped_and_bad_input_is_clear() -> None:
    message = observation_message(observation(cpu_percent=63.5, duration_ms="50000"))
    assert (message.realtime_ms, message.peak_vmem_bytes, message.read_bytes, message.write_bytes) == (
        52000, 500 * MB, 10 * 1024, 5 * 1024,
    )  # fmt: skip
    assert message.cpu_percent == "63.5%" and message.duration_ms == 50000
    assert observation_message({"process_name": "p", "exit_code": None}).exit_code == 0  # None: not given
    assert observation_message({"process_name": "p"}).event_id  # a default UUID
    with pytest.raises(InvalidArgument, match=r"unknown observation field\(s\) 'peak_rss'"):
        observation_message({"peak_rss": 1})
    with pytest.raises(InvalidArgument, match=r"'peak_rss_bytes' must be an integer, got list"):
        observation_message({"peak_rss_bytes": [1]})
    with pytest.raises(InvalidArgument, match=r"'task_hash' must be a string"):
        observation_message({"task_hash": 12})


def test_a_bad_observation_is_invalid_argument(server: AiServer) -> None:
    future = send_task_observation(observation(peak_rss_bytes=-5), f"localhost:{server.port}")
    with pytest.raises(grpc.RpcError) as failed:
        future.result(timeout=10)
    assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "peak_rss must be >= 0" in failed.value.details()


def test_one_channel_per_address_and_a_closeable_client(server: AiServer) -> None:
    address = f"localhost:{server.port}"
    send_task_observation(observation(), address).result(timeout=10)
    send_task_observation(observation(), address).result(timeout=10)
    assert list(ai_comms._clients) == [address]
    with AiCommsClient(address) as client:
        assert client.send(observation()).result(timeout=10).success


def test_the_plugin_side_loads_no_numpy() -> None:
    import subprocess
    import sys

    code = "import sys; import envplane.observations.ai_comms; print('numpy' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
