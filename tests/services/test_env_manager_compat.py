"""The original protocol, ``env_manager.v1.EnvManagerService``, driven the way its existing
clients drive it: stubs generated here, in a child process, from the field list of the
original (written out below, not envplane's copy), against a real daemon."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from envplane.client import EnvplaneClient
from tests.support.daemons import ThreadDaemon
from tests.support.processes import free_port
from tests.support.settings import offline_settings

ORIGINAL = """
syntax = "proto3";
package env_manager.v1;
service EnvManagerService {
  rpc StartServices(StartServicesRequest) returns (stream ServiceStatusUpdate);
  rpc StopServices(StopServicesRequest) returns (StopServicesResponse);
  rpc RestartService(RestartServiceRequest) returns (RestartServiceResponse);
  rpc GetServicesStatus(GetServicesStatusRequest) returns (ServicesStatusResponse);
  rpc StreamHealth(StreamHealthRequest) returns (stream HealthUpdate);
  rpc GetResourceAvailability(GetResourceAvailabilityRequest) returns (ResourceAvailabilityResponse);
  rpc ExecuteTask(ExecuteTaskRequest) returns (ExecuteTaskResponse);
  rpc PullImages(PullImagesRequest) returns (stream ImagePullProgress);
  rpc StreamLogs(StreamLogsRequest) returns (stream LogEntry);
}
message StartServicesRequest { repeated string service_names = 1; bool parallel = 2; map<string, string> overrides = 3; }
message ServiceStatusUpdate { string service_name = 1; string status = 2; string message = 3; int32 progress = 4; }
message StopServicesRequest { repeated string service_names = 1; int32 timeout_seconds = 2; }
message StopServicesResponse { bool success = 1; map<string, string> service_results = 2; }
message RestartServiceRequest { string service_name = 1; int32 timeout_seconds = 2; }
message RestartServiceResponse { bool success = 1; string message = 2; }
message GetServicesStatusRequest { repeated string service_names = 1; }
message ServicesStatusResponse { map<string, ServiceStatus> services = 1; }
message ServiceStatus { string name = 1; string status = 2; string container_id = 3; repeated int32 ports = 4;
  map<string, string> health_checks = 5; int64 started_at = 6; ResourceUsage resource_usage = 7; }
message ResourceUsage { double cpu_percent = 1; int64 memory_bytes = 2; int64 network_rx_bytes = 3; int64 network_tx_bytes = 4; }
message StreamHealthRequest { repeated string service_names = 1; int32 interval_seconds = 2; }
message HealthUpdate { string service_name = 1; bool healthy = 2; string message = 3; int64 timestamp = 4; map<string, string> details = 5; }
message GetResourceAvailabilityRequest { string workload_class = 1; }
message ResourceAvailabilityResponse { bool available = 1; int32 capacity = 2; int32 in_use = 3; HardwareInfo hardware = 4; }
message HardwareInfo { int32 cpu_cores = 1; int64 memory_bytes = 2; repeated GPU gpus = 3; }
message GPU { int32 index = 1; string name = 2; int64 memory_bytes = 3; double utilization_percent = 4; }
message ExecuteTaskRequest { string task_id = 1; string workload_class = 2; map<string, string> payload = 3; int32 timeout_seconds = 4; }
message ExecuteTaskResponse { bool success = 1; map<string, string> result = 2; string error = 3; double latency_ms = 4; }
message PullImagesRequest { repeated string image_names = 1; }
message ImagePullProgress { string image_name = 1; string status = 2; int64 current = 3; int64 total = 4; int32 progress_percent = 5; }
message StreamLogsRequest { string service_name = 1; bool follow = 2; int32 tail = 3; int64 since_timestamp = 4; }
message LogEntry { string service_name = 1; string container_id = 2; string stream = 3; string message = 4; int64 timestamp = 5; }
"""

# What an existing client does, step by step; prints one JSON object of what it saw.
CLIENT = """
import json, sys, time
import grpc
sys.path.insert(0, sys.argv[2])
from env_manager.v1 import env_manager_pb2 as pb, env_manager_pb2_grpc as pb_grpc
stub = pb_grpc.EnvManagerServiceStub(grpc.insecure_channel(sys.argv[1]))
seen = {}
updates = list(stub.StartServices(pb.StartServicesRequest(
    service_names=["greeter"], parallel=True, overrides={"greeter.env.GREETING": "bonjour"})))
seen["start"] = [(u.service_name, u.status, u.progress) for u in updates]
status = stub.GetServicesStatus(pb.GetServicesStatusRequest(service_names=["greeter"]))
g = status.services["greeter"]
seen["status_keys"] = sorted(status.services)
seen["greeter"] = {"status": g.status, "container_id": g.container_id, "ports": list(g.ports),
    "checks": dict(g.health_checks), "started_at": g.started_at, "memory": g.resource_usage.memory_bytes}
seen["all_keys"] = sorted(stub.GetServicesStatus(pb.GetServicesStatusRequest()).services)
health = stub.StreamHealth(pb.StreamHealthRequest(service_names=["greeter"], interval_seconds=1))
first = next(health)
seen["health"] = {"service": first.service_name, "healthy": first.healthy, "details": dict(first.details)}
health.cancel()
time.sleep(0.3)
seen["logs"] = [e.message for e in stub.StreamLogs(pb.StreamLogsRequest(service_name="greeter", tail=20))]
seen["log_entry"] = [(e.stream, e.container_id, e.timestamp > 0)
    for e in stub.StreamLogs(pb.StreamLogsRequest(service_name="greeter", tail=1))]
r = stub.RestartService(pb.RestartServiceRequest(service_name="greeter", timeout_seconds=2))
seen["restart"] = {"success": r.success, "message": r.message}
a = stub.GetResourceAvailability(pb.GetResourceAvailabilityRequest(workload_class=sys.argv[3]))
seen["availability"] = {"available": a.available, "capacity": a.capacity, "in_use": a.in_use,
    "cores": a.hardware.cpu_cores, "memory": a.hardware.memory_bytes}
t = stub.ExecuteTask(pb.ExecuteTaskRequest(task_id="t1", workload_class=sys.argv[3], payload={"text": "hi"}))
seen["task"] = {"success": t.success, "result": dict(t.result), "error": t.error, "latency": t.latency_ms}
try:
    stub.ExecuteTask(pb.ExecuteTaskRequest(task_id="t2", workload_class="no-such-pool", payload={}))
    seen["missing"] = "no error"
except grpc.RpcError as e:
    seen["missing"] = [e.code().name, e.details()]
stop = stub.StopServices(pb.StopServicesRequest(service_names=["greeter", "redis"], timeout_seconds=5))
seen["stop"] = {"success": stop.success, "results": dict(stop.service_results)}
print(json.dumps(seen))
"""

HANDLER = """
def upper(text):
    return {"upper": text.upper(), "length": len(text)}
"""


@pytest.fixture
def daemon(tmp_path: Path, wheelhouse: Path, uv_cache: Path) -> Iterator[ThreadDaemon]:
    port = free_port()
    config = tmp_path / "services.toml"
    config.write_text(
        f"""
[services.greeter]
command = ["sh", "-c", "echo $GREETING from greeter; exec python3 -m http.server {port} --bind 127.0.0.1"]
ports = [{port}]
env = {{ GREETING = "hello" }}
probe = {{ kind = "http", url = "http://127.0.0.1:{port}/", interval = "200ms" }}
"""
    )
    running = ThreadDaemon(offline_settings(tmp_path / "data", [wheelhouse], uv_cache, services_config=config))
    yield running.start()
    running.stop()


@pytest.fixture
def original_stubs(tmp_path: Path) -> Path:
    """The original protocol compiled here, as a client of the original would have it."""
    folder = tmp_path / "original"
    (folder / "env_manager" / "v1").mkdir(parents=True)
    (folder / "env_manager" / "v1" / "env_manager.proto").write_text(ORIGINAL)
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{folder}", f"--python_out={folder}",
         f"--grpc_python_out={folder}", "env_manager/v1/env_manager.proto"],
        check=True,
    )  # fmt: skip
    for package in (folder / "env_manager", folder / "env_manager" / "v1"):
        (package / "__init__.py").touch()
    return folder


def test_an_original_client_works_and_gets_the_truth(
    daemon: ThreadDaemon, original_stubs: Path, tmp_path: Path
) -> None:
    handler = tmp_path / "tasks.py"
    handler.write_text(textwrap.dedent(HANDLER))
    with EnvplaneClient(daemon.grpc_addr, timeout=120) as client:
        client.environments.create("wf", "tasks")
        client.workers.create_pool("gpu-small", "wf", "tasks", str(handler), min_size=2)
    script = tmp_path / "client.py"
    script.write_text(CLIENT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENVPLANE_")}
    done = subprocess.run(
        [sys.executable, str(script), daemon.grpc_addr, str(original_stubs), "gpu-small"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)

    assert {status for _, status, _ in seen["start"]} <= {"starting", "running", "healthy"}
    assert seen["start"][-1][:2] == ["greeter", "healthy"] and seen["start"][-1][2] == 100
    assert seen["status_keys"] == ["greeter"]  # the filter works (the original ignored it)
    assert "redis" in seen["all_keys"] and "greeter" in seen["all_keys"]
    greeter = seen["greeter"]
    assert greeter["status"] == "healthy" and greeter["container_id"].startswith("pid:")
    assert len(greeter["ports"]) == 1 and greeter["started_at"] > 0 and greeter["memory"] > 0
    assert greeter["checks"]["probe"] == "http" and greeter["checks"]["healthy"] == "true"
    assert seen["health"] == {"service": "greeter", "healthy": True, "details": seen["health"]["details"]}
    assert "bonjour from greeter" in seen["logs"]  # the override was applied
    assert seen["log_entry"][0][1].startswith("pid:") and seen["log_entry"][0][2]
    assert seen["restart"]["success"] and "healthy" in seen["restart"]["message"]

    availability = seen["availability"]
    assert availability == {**availability, "capacity": 2, "in_use": 0, "available": True}
    assert availability["cores"] == len(os.sched_getaffinity(0)) and availability["memory"] > 2**30
    task = seen["task"]
    assert task["success"] and task["result"] == {"upper": "HI", "length": "2"} and task["latency"] > 0
    assert seen["missing"][0] == "NOT_FOUND" and "no-such-pool" in seen["missing"][1]
    stop = seen["stop"]
    assert stop["results"]["greeter"].startswith("stopped") and stop["results"]["redis"].startswith("was not running")
    assert stop["success"]
