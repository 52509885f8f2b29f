"""The UV Venv Manager protocol, driven by stubs generated here from its proto, against a real
daemon: an existing client pointed at envplane works unchanged."""

from __future__ import annotations

import importlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import pytest
from sqlalchemy import create_engine, text

from envplane.client import EnvplaneClient
from envplane.config import Settings
from tests.support.daemons import ThreadDaemon
from tests.support.processes import process_running

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ModuleType, ModuleType]]:
    """Client stubs from proto/envmanager/env_manager.proto, as a user of the original would make them."""
    out = tmp_path_factory.mktemp("stubs")
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I", str(ROOT / "proto"), f"--python_out={out}",
         f"--grpc_python_out={out}", str(ROOT / "proto" / "envmanager" / "env_manager.proto")],
        check=True,
    )  # fmt: skip
    sys.path.insert(0, str(out))
    try:
        yield (
            importlib.import_module("envmanager.env_manager_pb2"),
            importlib.import_module("envmanager.env_manager_pb2_grpc"),
        )
    finally:
        sys.path.remove(str(out))


@pytest.fixture(scope="module")
def pb(generated: tuple[ModuleType, ModuleType]) -> ModuleType:
    return generated[0]


def stub_for(address: str, generated: tuple[ModuleType, ModuleType]) -> Any:
    return generated[1].EnvManagerServiceStub(grpc.insecure_channel(address))


@pytest.fixture
def stub(daemon: ThreadDaemon, generated: tuple[ModuleType, ModuleType]) -> Any:
    return stub_for(daemon.grpc_addr, generated)


def code_of(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value.code(), caught.value.details()


def test_the_original_client_flow(stub: Any, pb: ModuleType, wf: str, daemon: ThreadDaemon) -> None:
    ids = {"workflow_id": wf, "node_id": "rag"}
    assert stub.GetEnvStatus(pb.GetEnvStatusRequest(**ids)).status == "NOT_EXISTS"

    created = stub.CreateEnv(
        pb.CreateEnvRequest(
            **ids,
            python_version="3.11",
            packages=["alpha<2"],
            requirements_file_content=b"# pinned\ngamma==0.1.0\n",
            requirements_file_name="requirements.txt",
        )
    )
    assert (created.status, created.workflow_id, created.node_id) == ("created", wf, "rag")
    assert created.python_version.startswith("3.11") and created.env_path.endswith(f"{wf}/rag/_")
    assert '"alpha<2"' in created.pyproject_toml and '"gamma==0.1.0"' in created.pyproject_toml

    status = stub.GetEnvStatus(pb.GetEnvStatusRequest(**ids))
    assert (status.status, status.has_pyproject, status.has_uv_lock, status.has_venv) == ("ACTIVE", True, True, True)
    assert '"build_id"' in status.metadata_json and '"python_version": "3.11' in status.metadata_json

    added = stub.AddDeps(pb.DepsRequest(**ids, packages=["delta"]))
    assert (added.status, added.exit_code) == ("added", 0)
    listed = stub.ListDeps(pb.ListDepsRequest(**ids))
    assert dict(listed.locked_versions) == {"alpha": "1.1.0", "gamma": "0.1.0", "delta": "3.0.0"}
    assert sorted(listed.dependencies) == ["alpha<2", "delta>=3.0.0", "gamma==0.1.0"]

    updated = stub.UpdateDeps(pb.DepsRequest(**ids, requirements_file_content=b"gamma>=0.2\n"))
    assert updated.status == "updated"
    assert stub.ListDeps(pb.ListDepsRequest(**ids)).locked_versions["gamma"] == "0.2.0"
    removed = stub.RemoveDeps(pb.DepsRequest(**ids, packages=["delta"]))
    assert removed.status == "removed"
    assert stub.SyncEnv(pb.SyncEnvRequest(**ids)).status == "synced"

    exported = stub.ExportEnv(pb.ExportEnvRequest(**ids))
    assert '"gamma>=0.2"' in exported.pyproject_toml and 'name = "alpha"' in exported.uv_lock

    code = "import alpha, sys\nprint(alpha.__version__)\nprint('to stderr', file=sys.stderr)\nsys.exit(3)\n"
    ran = stub.RunCode(pb.RunCodeRequest(**ids, code=code, timeout=60))
    assert (ran.stdout, ran.stderr, ran.exit_code) == ("1.1.0\n", "to stderr\n", 3)

    first = stub.GetOperations(pb.GetOperationsRequest(workflow_id=wf, limit=2))
    assert (first.total, first.limit, first.offset) == (6, 2, 0)
    assert [o.operation for o in first.items] == ["run", "sync"]
    run = first.items[0]
    assert (run.status, run.exit_code, run.stdout, run.error) == ("FAILED", 3, "1.1.0\n", "the code exited with code 3")
    assert abs(run.started_at_unix - time.time()) < 600 and run.finished_at_unix >= run.started_at_unix
    rest = stub.GetOperations(pb.GetOperationsRequest(workflow_id=wf, limit=10, offset=2))
    assert [o.operation for o in rest.items] == ["remove", "update", "add", "create"] and rest.offset == 2
    # duration_ms is milliseconds: the same number envplane's own record derives from its times
    with EnvplaneClient(daemon.grpc_addr) as client:
        own = client.operations.get(rest.items[-1].id)
    assert rest.items[-1].duration_ms == own.duration_ms
    assert abs(own.duration_ms - (own.finished_at - own.started_at) * 1000) <= 1
    succeeded = stub.GetOperations(pb.GetOperationsRequest(workflow_id=wf, status="succeeded"))
    assert succeeded.total == 5

    assert stub.DeleteEnv(pb.DeleteEnvRequest(**ids)).status == "deleted"
    assert stub.GetEnvStatus(pb.GetEnvStatusRequest(**ids)).status == "NOT_EXISTS"
    gone = stub.DeleteOperations(pb.DeleteOperationsRequest(workflow_id=wf))
    assert (gone.workflow_id, gone.deleted_count, list(gone.deleted_node_ids)) == (wf, 7, ["rag"])

    swept = stub.Cleanup(pb.CleanupRequest(idle_hours=24))  # every env of this session is fresh
    assert list(swept.deleted) == [] and abs(swept.checked_at_unix - time.time()) < 60


@pytest.mark.parametrize(
    ("rpc", "fields", "status", "fragment"),
    [
        ("DeleteEnv", {"node_id": "missing"}, grpc.StatusCode.NOT_FOUND, "does not exist"),
        ("CreateEnv", {"node_id": "bad id!"}, grpc.StatusCode.INVALID_ARGUMENT, "node_id"),
        ("CreateEnv", {"node_id": "n", "packages": ["broken"]}, grpc.StatusCode.INVALID_ARGUMENT, "does-not-exist"),
        (
            "CreateEnv",
            {"node_id": "n", "requirements_file_content": b"\xff\xfe"},
            grpc.StatusCode.INVALID_ARGUMENT,
            "not UTF-8",
        ),
        ("AddDeps", {"node_id": "missing", "packages": ["alpha"]}, grpc.StatusCode.NOT_FOUND, "does not exist"),
        ("RunCode", {"node_id": "missing", "code": "print(1)"}, grpc.StatusCode.NOT_FOUND, "does not exist"),
        ("RunCode", {"node_id": "missing", "code": "  "}, grpc.StatusCode.INVALID_ARGUMENT, "code is empty"),
        ("Cleanup", {"idle_hours": 0}, grpc.StatusCode.INVALID_ARGUMENT, "idle_hours must be greater than 0"),
        ("GetOperations", {"offset": -1}, grpc.StatusCode.INVALID_ARGUMENT, "offset must be >= 0"),
        ("GetOperations", {"status": "DONE"}, grpc.StatusCode.INVALID_ARGUMENT, "status 'DONE'"),
    ],
)
def test_errors_map_to_status_codes(
    stub: Any, pb: ModuleType, wf: str, rpc: str, fields: dict[str, Any], status: grpc.StatusCode, fragment: str
) -> None:
    request_type = stub_request_types(pb)[rpc]
    ids = {"workflow_id": wf} if "workflow_id" in request_type.DESCRIPTOR.fields_by_name else {}
    code, details = code_of(lambda: getattr(stub, rpc)(request_type(**ids, **fields)))
    assert code == status and fragment in details, details


def stub_request_types(pb: ModuleType) -> dict[str, Any]:
    service = pb.DESCRIPTOR.services_by_name["EnvManagerService"]
    return {m.name: getattr(pb, m.input_type.name) for m in service.methods}


def test_create_twice_is_already_exists(stub: Any, pb: ModuleType, wf: str) -> None:
    stub.CreateEnv(pb.CreateEnvRequest(workflow_id=wf, node_id="n", packages=["alpha"]))
    code, details = code_of(lambda: stub.CreateEnv(pb.CreateEnvRequest(workflow_id=wf, node_id="n")))
    assert code == grpc.StatusCode.ALREADY_EXISTS and "already exists" in details


def test_run_code_timeout_kills_the_process_group(stub: Any, pb: ModuleType, wf: str, tmp_path: Path) -> None:
    stub.CreateEnv(pb.CreateEnvRequest(workflow_id=wf, node_id="n"))
    pid_file = tmp_path / "child.pid"
    code = (
        "import subprocess, time\n"
        f"child = subprocess.Popen(['sleep', '300'])\nopen({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "print('started', flush=True)\ntime.sleep(300)\n"
    )
    started = time.monotonic()
    status, details = code_of(
        lambda: stub.RunCode(pb.RunCodeRequest(workflow_id=wf, node_id="n", code=code, timeout=2))
    )
    assert status == grpc.StatusCode.DEADLINE_EXCEEDED and "longer than its timeout of 2 s" in details
    assert time.monotonic() - started < 15
    assert not process_running(int(pid_file.read_text())), "the code's child process was killed with it"
    (run,) = stub.GetOperations(pb.GetOperationsRequest(workflow_id=wf, node_id="n", status="FAILED")).items
    assert run.operation == "run" and "timeout" in run.error and run.stdout == "started\n"


def test_call_deadline_also_bounds_run_code(stub: Any, pb: ModuleType, wf: str) -> None:
    stub.CreateEnv(pb.CreateEnvRequest(workflow_id=wf, node_id="n"))
    request = pb.RunCodeRequest(workflow_id=wf, node_id="n", code="import time; time.sleep(60)", timeout=600)
    status, _ = code_of(lambda: stub.RunCode(request, timeout=2))
    assert status == grpc.StatusCode.DEADLINE_EXCEEDED


def test_switched_off_run_code_and_face_are_unimplemented(
    generated: tuple[ModuleType, ModuleType], pb: ModuleType, make_settings: Any, wf: str
) -> None:
    no_run = ThreadDaemon(make_settings(run_code_enabled=False, log_level="warning")).start()
    try:
        stub = stub_for(no_run.grpc_addr, generated)
        stub.CreateEnv(pb.CreateEnvRequest(workflow_id=wf, node_id="n"))
        status, details = code_of(lambda: stub.RunCode(pb.RunCodeRequest(workflow_id=wf, node_id="n", code="1")))
        assert status == grpc.StatusCode.UNIMPLEMENTED and "ENVPLANE_RUN_CODE_ENABLED=false" in details
    finally:
        no_run.stop()
    settings: Settings = make_settings(compat_envmanager=False, log_level="warning")
    settings = settings.model_copy(update={"data_dir": settings.data_dir.with_name("data-no-compat")})
    no_face = ThreadDaemon(settings).start()
    try:
        stub = stub_for(no_face.grpc_addr, generated)
        status, _ = code_of(lambda: stub.GetEnvStatus(pb.GetEnvStatusRequest(workflow_id=wf, node_id="n")))
        assert status == grpc.StatusCode.UNIMPLEMENTED
    finally:
        no_face.stop()


def test_cleanup_lists_what_it_deleted(
    generated: tuple[ModuleType, ModuleType], pb: ModuleType, make_settings: Any
) -> None:
    settings: Settings = make_settings(log_level="warning")
    own = ThreadDaemon(settings).start()
    try:
        stub = stub_for(own.grpc_addr, generated)
        for node, version in (("idle", ""), ("idle", "v2"), ("busy", "")):
            stub.CreateEnv(pb.CreateEnvRequest(workflow_id="wf", node_id=node, version_id=version))
        engine = create_engine(settings.resolved_database_url)  # SQLite or PostgreSQL: the daemon's own
        with engine.begin() as db:  # last used 3 days ago
            db.execute(
                text("UPDATE environments SET last_used_at = :t WHERE node_id = 'idle'"), {"t": time.time() - 72 * 3600}
            )
        engine.dispose()
        swept = stub.Cleanup(pb.CleanupRequest(idle_hours=48))
        assert sorted(swept.deleted) == ["wf/idle", "wf/idle@v2"]
        assert stub.GetEnvStatus(pb.GetEnvStatusRequest(workflow_id="wf", node_id="busy")).status == "ACTIVE"
    finally:
        own.stop()


# --- the wire format: bytes encoded by the original field numbers ---------------------------


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def field(number: int, value: str | bytes | int | bool) -> bytes:
    """One field as the protobuf wire format has it (varint, or length-delimited). Only
    non-default values: proto3 writes no field that holds its default."""
    if isinstance(value, bool | int):
        return varint(number << 3) + varint(int(value))
    data = value.encode() if isinstance(value, str) else value
    return varint(number << 3 | 2) + varint(len(data)) + data


IDS = field(1, "wf") + field(2, "node") + field(3, "v1")
ID_VALUES = {"workflow_id": "wf", "node_id": "node", "version_id": "v1"}
OPERATION = (
    field(1, 41) + field(2, "wf") + field(3, "node") + field(4, "v1") + field(5, "add") + field(6, "SUCCEEDED")
    + field(7, 1_790_000_000) + field(8, 1_790_000_002) + field(9, 2_345) + field(10, "out") + field(11, "err")
    + field(12, 1) + field(13, "why") + field(14, "{}")
)  # fmt: skip
# fmt: off
WIRE_CASES: list[tuple[str, bytes, dict[str, Any]]] = [
    ("GetEnvStatusRequest", IDS, ID_VALUES),
    (
        "EnvStatusResponse",
        IDS + field(4, "ACTIVE") + field(5, "/p") + field(6, True) + field(7, True) + field(8, True) + field(9, "{}"),
        {
            **ID_VALUES,
            "status": "ACTIVE",
            "env_path": "/p",
            "has_pyproject": True,
            "has_uv_lock": True,
            "has_venv": True,
            "metadata_json": "{}",
        },
    ),
    (
        "CreateEnvRequest",
        IDS + field(4, "3.11") + field(5, "a") + field(5, "b") + field(6, b"c==1\n") + field(7, "r.txt"),
        {
            **ID_VALUES,
            "python_version": "3.11",
            "packages": ["a", "b"],
            "requirements_file_content": b"c==1\n",
            "requirements_file_name": "r.txt",
        },
    ),
    (
        "CreateEnvResponse",
        IDS + field(4, "/p") + field(5, "3.11.7") + field(6, "created") + field(7, "[project]"),
        {**ID_VALUES, "env_path": "/p", "python_version": "3.11.7", "status": "created", "pyproject_toml": "[project]"},
    ),
    ("DeleteEnvResponse", IDS + field(4, "deleted"), {**ID_VALUES, "status": "deleted"}),
    (
        "DepsRequest",
        IDS + field(4, "a") + field(5, b"b\n") + field(6, "r.txt"),
        {**ID_VALUES, "packages": ["a"], "requirements_file_content": b"b\n", "requirements_file_name": "r.txt"},
    ),
    (
        "DepsOperationResponse",
        IDS + field(4, "added") + field(5, "o") + field(6, "e") + field(7, 3),
        {**ID_VALUES, "status": "added", "stdout": "o", "stderr": "e", "exit_code": 3},
    ),
    (
        "SyncEnvResponse",
        IDS + field(4, "synced") + field(5, "o") + field(6, "e") + field(7, 1),
        {**ID_VALUES, "status": "synced", "stdout": "o", "stderr": "e", "exit_code": 1},
    ),
    (
        "RunCodeRequest",
        IDS + field(4, "print(1)") + field(5, 30),
        {**ID_VALUES, "code": "print(1)", "timeout": 30},
    ),
    (
        "RunCodeResponse",
        IDS + field(4, "1\n") + field(5, "oops") + field(6, 2),
        {**ID_VALUES, "stdout": "1\n", "stderr": "oops", "exit_code": 2},
    ),
    (
        "ExportEnvResponse",
        IDS + field(4, "[project]") + field(5, "version = 1"),
        {**ID_VALUES, "pyproject_toml": "[project]", "uv_lock": "version = 1"},
    ),
    ("CleanupRequest", field(1, 72), {"idle_hours": 72}),
    (
        "CleanupResponse",
        field(1, "wf/a") + field(1, "wf/b/v1") + field(2, 1_790_000_000),
        {"deleted": ["wf/a", "wf/b/v1"], "checked_at_unix": 1_790_000_000},
    ),
    (
        "GetOperationsRequest",
        field(1, "wf") + field(2, "node") + field(3, "FAILED") + field(4, 20) + field(5, 40),
        {"workflow_id": "wf", "node_id": "node", "status": "FAILED", "limit": 20, "offset": 40},
    ),
    (
        "OperationRecord",
        OPERATION,
        {
            "id": 41,
            "workflow_id": "wf",
            "node_id": "node",
            "version_id": "v1",
            "operation": "add",
            "status": "SUCCEEDED",
            "started_at_unix": 1_790_000_000,
            "finished_at_unix": 1_790_000_002,
            "duration_ms": 2_345,
            "stdout": "out",
            "stderr": "err",
            "exit_code": 1,
            "error": "why",
            "metadata_json": "{}",
        },
    ),
    (
        "DeleteOperationsRequest",
        field(1, "wf") + field(2, "node"),
        {"workflow_id": "wf", "node_id": "node"},
    ),
    (
        "DeleteOperationsResponse",
        field(1, "wf") + field(2, 5) + field(3, "node") + field(4, "a") + field(4, "b"),
        {"workflow_id": "wf", "deleted_count": 5, "node_id": "node", "deleted_node_ids": ["a", "b"]},
    ),
]
# fmt: on


@pytest.mark.parametrize(("name", "wire", "values"), WIRE_CASES, ids=[c[0] for c in WIRE_CASES])
def test_original_field_numbers_decode_to_the_same_values(
    pb: ModuleType, name: str, wire: bytes, values: dict[str, Any]
) -> None:
    message = getattr(pb, name).FromString(wire)
    got = {k: list(getattr(message, k)) if isinstance(v, list) else getattr(message, k) for k, v in values.items()}
    assert got == values
    assert message.SerializeToString() == wire, "and encode to the same bytes"
    # the daemon's own generated classes read the same bytes the same way
    from envplane.envmanager import env_manager_pb2 as ours

    assert getattr(ours, name).FromString(wire) == message


def test_maps_and_nested_lists_by_the_original_numbers(pb: ModuleType) -> None:
    entry = field(1, "alpha") + field(2, "1.1.0")
    listed = pb.ListDepsResponse.FromString(IDS + field(4, "alpha<2") + field(5, entry))
    assert (list(listed.dependencies), dict(listed.locked_versions)) == (["alpha<2"], {"alpha": "1.1.0"})
    page = pb.OperationListResponse.FromString(
        field(1, 9) + field(2, 1) + field(3, 8) + field(4, OPERATION) + field(4, OPERATION)
    )
    assert (page.total, page.limit, page.offset, [o.id for o in page.items]) == (9, 1, 8, [41, 41])
    assert page.items[0].duration_ms == 2_345


def test_served_on_the_envplane_port_with_reflection_and_health(daemon: ThreadDaemon, pb: ModuleType) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    service = pb.DESCRIPTOR.services_by_name["EnvManagerService"]
    assert service.full_name == "envmanager.EnvManagerService"
    assert [m.name for m in service.methods] == [
        "GetEnvStatus", "CreateEnv", "DeleteEnv", "AddDeps", "UpdateDeps", "RemoveDeps", "ListDeps", "SyncEnv",
        "RunCode", "ExportEnv", "Cleanup", "GetOperations", "DeleteOperations",
    ]  # fmt: skip
    channel = grpc.insecure_channel(daemon.grpc_addr)
    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service.full_name))
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
    answer = next(iter(reflect.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))))
    names = {s.name for s in answer.list_services_response.service}
    assert {"envplane.v1.EnvironmentService", "envmanager.EnvManagerService"} <= names
