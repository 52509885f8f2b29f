"""The observations capability in a real daemon: envplane.v1 over gRPC (unary and the
bidirectional stream) and REST, Nextflow's weblog as Nextflow posts it, the earlier plugin's
code unchanged against the daemon's port, the report rendered by a real headless browser."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from envplane.client import EnvplaneClient
from envplane.client._sync.observations import observation
from envplane.config import Settings
from envplane.observations.ai_comms import send_task_observation
from envplane.v1 import observations_pb2 as pb
from tests.support.daemons import ProcessDaemon, ThreadDaemon
from tests.support.settings import offline_settings

MB = 2**20
GB = 2**30
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def daemon(make_settings: Callable[..., Settings]) -> Iterator[ThreadDaemon]:
    running = ThreadDaemon(make_settings()).start()
    yield running
    running.stop()


def task(n: int, **fields: Any) -> pb.TaskObservation:
    values: dict[str, Any] = {
        "pipeline": "nf-core/demo",
        "process": "ALIGN" if n % 2 else "QC",
        "task_id": str(n),
        "status": "COMPLETED",
        "requested_memory_bytes": 4 * GB,
        "realtime_ms": 30_000 + n,
        "peak_rss_bytes": (300 + n % 50) * MB if n % 2 else (80 + n % 7) * MB,
        "read_bytes": (1 + n % 50) * 100 * MB,
        "event_id": f"t{n}",
    }
    values.update(fields)
    return observation(**values)


def test_both_faces_store_decide_and_answer_the_same(daemon: ThreadDaemon) -> None:
    with EnvplaneClient(daemon.grpc_addr, timeout=60) as client:
        first = client.observations.observe(task(1))
        assert first.action.kind == pb.Action.RIGHT_SIZE and first.observation_id > 0
        assert first.action.evidence.policy == "rightsizer" and first.action.evidence.tasks_seen == 1

        # The stream: a thousand observations, one reply each, in order; a bad one is a reply.
        stream = [task(n) for n in range(2, 1002)]
        stream[10] = task(12, peak_rss_bytes=-5)
        replies = list(client.observations.observe_stream(iter(stream)))
        assert [r.event_id for r in replies] == [m.event_id for m in stream]
        assert "peak_rss must be >= 0, got -5" in replies[10].error and replies[10].observation_id == 0
        ids = [r.observation_id for r in replies if not r.error]
        assert ids == sorted(ids) and len(set(ids)) == 999
        # Sent again: stored once, the same actions.
        again = list(client.observations.observe_stream(iter(stream[:5])))
        assert all(r.duplicate for r in again) and [r.observation_id for r in again] == ids[:5]

        oom = client.observations.observe(
            task(5001, status="FAILED", exit_code=137, requested_memory_bytes=320 * MB, peak_rss_bytes=319 * MB)
        )
        assert oom.action.kind == pb.Action.RETRY_WITH_RESOURCES
        assert 349 * MB <= oom.action.memory_bytes < 2 * 320 * MB  # the maximum seen with headroom

        page = client.observations.query(pipeline="nf-core/demo", process="ALIGN", page_size=100)
        assert len(page.observations) == 100 and page.next_page_token
        assert all(o.observation.process == "ALIGN" for o in page.observations)
        failed = client.observations.query(status="failed")
        assert [o.observation.task_id for o in failed.observations] == ["5001"]
        assert failed.observations[0].action.kind == pb.Action.RETRY_WITH_RESOURCES

        stats = {s.process: s for s in client.observations.stats("nf-core/demo")}
        assert stats["ALIGN"].completed == 501 and stats["ALIGN"].memory_failures == 1
        assert stats["QC"].peak_rss_max_bytes == 86 * MB and stats["QC"].wasted_gb_hours > 0
        assert 0 < stats["QC"].recommended_memory_bytes < 100 * MB

        recs = client.observations.recommendations("nf-core/demo")
        assert {r.process for r in recs.recommendations} == {"ALIGN", "QC"}
        config = client.observations.export("nf-core/demo", max_memory_bytes=16 * GB)
        assert "withName: 'ALIGN'" in config and "resourceLimits = [ memory: 16384.MB ]" in config
        pipeline = client.observations.set_pipeline("nf-core/demo", policy="witt-p95", memory_cap=8 * GB)
        assert (pipeline.policy, pipeline.memory_cap_bytes, pipeline.processes) == ("witt-p95", 8 * GB, 2)

    with httpx.Client(base_url=daemon.http_url, timeout=60) as http:
        reply = http.post(
            "/v1/observations", json={"pipeline": "rest", "process": "P", "status": "COMPLETED", "peak_rss_bytes": 1000}
        )
        assert reply.status_code == 200, reply.text
        assert reply.json()["action"]["kind"] == "RIGHT_SIZE"
        batch = http.post(
            "/v1/observations:batch",
            json={
                "observations": [
                    {"pipeline": "rest", "process": "P", "status": "COMPLETED", "peak_rss_bytes": 2000},
                    {"process": "P"},
                ]
            },
        )
        assert [bool(r.get("error")) for r in batch.json()["replies"]] == [False, True]
        listed = http.get("/v1/observations", params={"pipeline": "rest"}).json()
        assert [o["observation"]["source"] for o in listed["observations"]] == ["rest", "rest"]
        stats = http.get("/v1/observations:stats", params={"pipeline": "nf-core/demo", "process": "QC"}).json()
        assert stats["processes"][0]["completed"] == "499"  # int64 as a string, the proto JSON mapping
        as_json = http.get("/v1/observations:config", params={"pipeline": "nf-core/demo", "format": "json"})
        assert as_json.headers["content-type"] == "application/json"
        assert as_json.json()["policy"] == "witt-p95" and as_json.json()["resource_limits"]["memory_bytes"] == 8 * GB
        patched = http.patch("/v1/pipelines/nf-core/demo", json={"policy": "rightsizer"})
        assert patched.json()["policy"] == "rightsizer"
        pipelines = http.get("/v1/pipelines").json()["pipelines"]
        assert {p["name"] for p in pipelines} == {"nf-core/demo", "rest"}
        metrics = http.get("/metrics").text
        assert 'envplane_observations_total{kind="RIGHT_SIZE",source="grpc"}' in metrics
        assert "envplane_observation_decision_seconds_count" in metrics
        assert http.get("/health").json()["observed_processes"] == 3
        page = http.get("/v1/observations", params={"page_token": "nonsense"})
        assert page.status_code == 422 and "page_token" in page.json()["error"]["message"]


def test_nextflow_weblog_events_as_nextflow_posts_them(daemon: ThreadDaemon) -> None:
    run = str(uuid.uuid4())
    base = {"runName": "tiny_turing", "runId": run, "utcTime": "2026-12-01T10:00:00Z"}
    started = {
        **base,
        "event": "started",
        "metadata": {"workflow": {"projectName": "nf-core/rnaseq", "manifest": {"name": "nf-core/rnaseq"}}},
    }

    def trace(task_id: int, **fields: Any) -> dict[str, Any]:
        values = {
            "task_id": task_id, "status": "COMPLETED", "hash": "ab/cdef12", "name": f"FASTQC ({task_id})",
            "exit": 0, "submit": 1764583200000, "start": 1764583201000, "complete": 1764583260000,
            "process": "NFCORE_RNASEQ:RNASEQ:FASTQC", "attempt": 1, "cpus": 2, "memory": 4 * GB,
            "time": 3_600_000, "duration": 60_000, "realtime": 59_000, "%cpu": 163.4, "%mem": 0.4,
            "rss": 250 * MB, "vmem": 900 * MB, "peak_rss": 260 * MB, "peak_vmem": 910 * MB,
            "rchar": 1_500_000_000, "wchar": 20_000_000, "native_id": 4242, "error_action": None,
        }  # fmt: skip
        values.update(fields)
        return values

    with httpx.Client(base_url=daemon.http_url, timeout=60) as http:
        url = "/v1/observations:weblog"
        assert http.post(url, json=started).json() == {"event": "started", "observed": False}
        submitted = http.post(url, json={**base, "event": "process_submitted", "trace": trace(1, status="SUBMITTED")})
        assert submitted.status_code == 200 and not submitted.json().get("observed")
        done = http.post(url, json={**base, "event": "process_completed", "trace": trace(1)}).json()
        assert done["observed"] and done["reply"]["action"]["kind"] == "RIGHT_SIZE"
        oom = {**base, "event": "process_completed", "trace": trace(2, status="FAILED", exit=137, peak_rss=4 * GB - MB)}
        retried = http.post(url, json=oom).json()
        assert retried["reply"]["action"]["kind"] == "RETRY_WITH_RESOURCES"
        assert http.post(url, json=oom).json()["reply"]["duplicate"]  # Nextflow resending: stored once
        bad = http.post(url, json={**base, "event": "process_completed", "trace": trace(3, peak_rss="lots")})
        assert bad.status_code == 422 and "trace.peak_rss is not a number: 'lots'" in bad.json()["error"]["message"]
        listed = http.get("/v1/observations", params={"pipeline": "nf-core/rnaseq"}).json()["observations"]
    assert [(o["observation"]["status"], o["observation"]["source"]) for o in listed] == [
        ("COMPLETED", "weblog"),
        ("FAILED", "weblog"),
    ]
    first = listed[0]["observation"]
    assert (first["run"], first["peak_rss_bytes"], first["cpu_percent"]) == ("tiny_turing", str(260 * MB), 163.4)
    assert first["read_bytes"] == "1500000000" and first["requested_memory_bytes"] == str(4 * GB)


def test_the_seed_plugin_code_runs_unchanged_against_the_daemon(daemon: ThreadDaemon) -> None:
    """The seed's pattern, against the daemon's own gRPC port: send_task_observation(...) then
    future.result(). The observation is stored like any other."""
    ai_server_address = daemon.grpc_addr
    observation_data = {
        "event_id": str(uuid.uuid4()), "event_type": "task_complete", "timestamp_iso": "2026-12-01T10:00:00Z",
        "pipeline_name": "my_pipeline", "process_name": "my_process", "task_id_num": 123,
        "task_hash": "xxxyyyzzz", "task_name": "my_process (1)", "native_id": "slurm_12345",
        "status": "COMPLETED", "exit_code": 0, "duration_ms": 50000, "realtime_ms": 48000,
        "cpu_percent": "150.0%", "peak_rss_bytes": 200 * MB, "peak_vmem_bytes": 500 * MB,
        "read_bytes": 10 * MB, "write_bytes": 5 * MB,
    }  # fmt: skip
    future = send_task_observation(observation_data, server_address=ai_server_address)
    action_response = future.result()
    assert action_response.success and action_response.observation_event_id == observation_data["event_id"]
    details = json.loads(action_response.action_details)
    assert details["kind"] == "RIGHT_SIZE" and details["memory_bytes"] == 200 * MB
    with EnvplaneClient(daemon.grpc_addr, timeout=60) as client:
        [stored] = client.observations.query(pipeline="my_pipeline").observations
    assert stored.observation.source == "nf_ai_comms" and stored.observation.cpu_percent == 150.0
    assert (stored.observation.write_bytes, stored.observation.peak_vmem_bytes) == (5 * MB, 500 * MB)


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_the_report_renders_in_a_headless_browser(daemon: ThreadDaemon, tmp_path: Path) -> None:
    with EnvplaneClient(daemon.grpc_addr, timeout=60) as client:
        list(client.observations.observe_stream(task(n) for n in range(200)))
        client.observations.observe(
            task(999, status="FAILED", exit_code=137, requested_memory_bytes=330 * MB, peak_rss_bytes=329 * MB)
        )
        client.observations.observe(task(1001, status="FAILED", exit_code=2, peak_rss_bytes=10 * MB))  # a tool's error
        page = client.observations.report("nf-core/demo")
    assert "memory failures<b>1 → " in page  # the OOM, not the tool's error
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "") and "<script" not in page  # self-contained
    path = tmp_path / "report.html"
    path.write_text(page)
    browser = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
    ]
    dom = subprocess.run(
        [*browser, "--dump-dom", path.as_uri()], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert dom.count('class="peak"') >= 200 and "withName: 'ALIGN'" in dom
    assert "RETRY_WITH_RESOURCES" in dom and "waste at requests" in dom
    shot = tmp_path / "report.png"
    subprocess.run(
        [*browser, f"--screenshot={shot}", "--window-size=1100,1400", path.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


@pytest.mark.slow
def test_kill_9_loses_no_acknowledged_observation(tmp_path: Path, uv_cache: Path) -> None:
    """Every observation answered before kill -9 is there after, and the evidence with it."""
    daemon = ProcessDaemon.of(offline_settings(tmp_path / "data", [], uv_cache))
    try:
        daemon.start()
        with EnvplaneClient(daemon.grpc_addr, timeout=60) as client:
            replies = list(client.observations.observe_stream(task(n) for n in range(1, 801)))
            before = client.observations.recommendations("nf-core/demo")
        assert len(replies) == 800 and not any(r.error for r in replies)
        daemon.kill9()
        daemon.start()
        with EnvplaneClient(daemon.grpc_addr, timeout=60) as client:
            page = client.observations.query(pipeline="nf-core/demo", page_size=500)
            rest = client.observations.query(pipeline="nf-core/demo", page_size=500, page_token=page.next_page_token)
            stored = {o.id for o in [*page.observations, *rest.observations]}
            assert stored == {r.observation_id for r in replies}
            assert client.observations.recommendations("nf-core/demo") == before
            again = client.observations.observe(task(1))
            assert again.duplicate and again.observation_id == replies[0].observation_id
    finally:
        daemon.stop_if_running()
