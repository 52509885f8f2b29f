"""Every /v1 route over real HTTP on loopback, with the same error mapping as gRPC."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.support.daemons import ThreadDaemon
from tests.support.waiting import eventually


@pytest.fixture
def http(daemon: ThreadDaemon) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=daemon.http_url, timeout=60) as client:
        yield client


def _error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()["error"]
    assert body["code"] == code
    return str(body["message"])


def test_full_lifecycle(http: httpx.Client, wf: str) -> None:
    created = http.post("/v1/environments", json={"workflow_id": wf, "node_id": "n", "packages": ["alpha<2"]})
    assert created.status_code == 201, created.text
    env = created.json()
    assert env["status"] == "READY" and env["dependencies"] == ["alpha<2"]
    assert env["ref"] == {"workflow_id": wf, "node_id": "n", "version_id": ""}

    path = f"/v1/environments/{wf}/n"
    assert http.get(path).json()["build_id"] == env["build_id"]
    body = {"workflow_id": wf, "node_id": "n", "packages": ["alpha<2"]}
    _error(http.post("/v1/environments", json=body), 409, "ALREADY_EXISTS")
    again = http.post("/v1/environments", json={**body, "exist_ok": True})
    assert again.status_code == 200, "nothing was created"
    assert again.json()["lock_sha256"] == env["lock_sha256"]

    added = http.post(f"{path}/dependencies", json={"packages": ["gamma==0.1.0"]}).json()
    assert added["changes"] == [{"name": "gamma", "old_version": "", "new_version": "0.1.0"}]

    updated = http.patch(f"{path}/dependencies", json={"packages": ["gamma"]}).json()
    assert updated["operation"]["status"] == "SUCCEEDED"

    deps = http.get(f"{path}/dependencies").json()
    assert deps["declared"] == ["alpha<2", "gamma==0.1.0"]

    removed = http.delete(f"{path}/dependencies", params={"packages": ["gamma"]}).json()
    assert removed["changes"][0]["name"] == "gamma"

    assert http.post(f"{path}/sync").json()["environment"]["status"] == "READY"
    exported = http.get(f"{path}/export").json()
    assert "alpha==1.1.0" in exported["requirements_txt"]

    listing = http.get("/v1/environments", params={"workflow_id": wf}).json()
    assert listing["total"] == 1 and listing["environments"][0]["ref"]["node_id"] == "n"

    ops = http.get("/v1/operations", params={"workflow_id": wf, "page_size": 2}).json()
    assert ops["total"] == 5 and len(ops["operations"]) == 2 and ops["next_page_token"]
    more = http.get("/v1/operations", params={"workflow_id": wf, "page_token": ops["next_page_token"]}).json()
    assert [o["operation"] for o in ops["operations"] + more["operations"]] == [
        "sync",
        "remove",
        "update",
        "add",
        "create",
    ]

    deleted = http.delete(path)
    assert deleted.status_code == 200 and deleted.json()["operation"]["operation"] == "delete"
    _error(http.get(path), 404, "NOT_FOUND")
    assert http.request("DELETE", "/v1/operations", params={"workflow_id": wf}).json()["deleted_count"] == 6


def test_versioned_env_uses_a_query_parameter(http: httpx.Client, wf: str) -> None:
    body = {"workflow_id": wf, "node_id": "n", "version_id": "v2", "packages": ["alpha"]}
    assert http.post("/v1/environments", json=body).status_code == 201
    assert http.get(f"/v1/environments/{wf}/n", params={"version_id": "v2"}).json()["ref"]["version_id"] == "v2"
    _error(http.get(f"/v1/environments/{wf}/n"), 404, "NOT_FOUND")


def test_conflicts_busy_and_deadline(http: httpx.Client, wf: str, slow_package: Callable[[float], str]) -> None:
    body = {"workflow_id": wf, "node_id": "n", "packages": ["alpha"]}
    assert http.post("/v1/environments", json=body).status_code == 201
    assert "already exists" in _error(http.post("/v1/environments", json=body), 409, "ALREADY_EXISTS")
    slow = slow_package(2.0)
    path = f"/v1/environments/{wf}/n"
    worker = threading.Thread(target=http.post, args=(f"{path}/dependencies",), kwargs={"json": {"packages": [slow]}})
    worker.start()
    eventually(lambda: http.get(path).json()["busy_with"], what="the add to hold the env")
    busy = http.post(f"{path}/dependencies", json={"packages": ["gamma"], "fail_if_busy": True})
    assert "busy with add" in _error(busy, 409, "FAILED_PRECONDITION")
    late = http.post(f"{path}/sync", headers={"X-Request-Timeout": "0.5"})
    assert "deadline" in _error(late, 504, "DEADLINE_EXCEEDED")
    worker.join(30)


def test_streaming_create_as_ndjson(http: httpx.Client, wf: str) -> None:
    body = {"workflow_id": wf, "node_id": "s", "packages": ["beta"]}
    with http.stream("POST", "/v1/environments:stream", json=body) as response:
        lines = [json.loads(line) for line in response.iter_lines() if line]
    assert lines[0]["phase"] == "validate" and lines[-1]["phase"] == "done"
    assert lines[-1]["environment"]["status"] == "READY"
    with http.stream("POST", "/v1/environments:stream", json=body) as response:
        last = [json.loads(line) for line in response.iter_lines() if line][-1]
    assert last["error"]["code"] == "ALREADY_EXISTS" and last["http_status"] == 409
    with http.stream("POST", "/v1/environments:stream", json={**body, "exist_ok": True}) as response:
        reused = [json.loads(line) for line in response.iter_lines() if line]
    assert "reusing it" in reused[-1]["message"] and reused[-1]["environment"]["status"] == "READY"
    assert "uv" not in {line["phase"] for line in reused}, "no uv run for a reused env"


def test_events_as_server_sent_events(http: httpx.Client, wf: str) -> None:
    http.post("/v1/environments", json={"workflow_id": wf, "node_id": "e", "packages": ["alpha"]})
    with http.stream("GET", "/v1/events", params={"follow": "false"}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        text = "".join(response.iter_text())
    frames = [f for f in text.split("\n\n") if f.strip()]
    ours = [f for f in frames if f'"{wf}"' in f]
    assert [f.splitlines()[1] for f in ours] == [
        "event: EnvironmentCreationStarted",
        "event: EnvironmentCreated",
    ]
    started, created = (int(f.splitlines()[0].removeprefix("id: ")) for f in ours)
    headers = {"Last-Event-ID": str(started)}
    with http.stream("GET", "/v1/events", params={"follow": "false"}, headers=headers) as response:
        resumed = [f for f in "".join(response.iter_text()).split("\n\n") if f.strip()]
    cursors = [int(f.splitlines()[0].removeprefix("id: ")) for f in resumed]
    assert cursors and min(cursors) == started + 1, "the stream resumes right after the cursor given"
    mine = [f for f in resumed if f'"{wf}"' in f]
    assert [int(f.splitlines()[0].removeprefix("id: ")) for f in mine] == [created]
    data = json.loads(mine[0].splitlines()[2].removeprefix("data: "))
    assert data["subject"] == {
        "kind": "environment",
        "id": f"{wf}/e",
        "workflow_id": wf,
        "node_id": "e",
        "version_id": "",
    }


def test_cleanup_dry_run(http: httpx.Client) -> None:
    result = http.post("/v1/cleanup", json={"idle_hours": 10000, "dry_run": True}).json()
    assert result["dry_run"] is True and result["removed"] == []


def test_health_metrics_openapi_docs(http: httpx.Client, wf: str) -> None:
    http.post("/v1/environments", json={"workflow_id": wf, "node_id": "m", "packages": ["alpha"]})
    assert http.get("/health").json()["status"] == "ok"
    metrics = http.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'envplane_operations_total{operation="create",status="SUCCEEDED"}' in metrics.text
    assert 'envplane_environments{status="READY"}' in metrics.text
    spec = http.get("/openapi.json").json()
    assert {
        "/v1/environments",
        "/v1/environments/{workflow_id}/{node_id}",
        "/v1/operations",
        "/v1/events",
    } <= set(spec["paths"])
    assert "swagger-ui" in http.get("/docs").text
