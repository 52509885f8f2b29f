"""The observations service over a real store (SQLite, and PostgreSQL when CI has one): actions
from the evidence, caps, clear refusals with nothing stored, duplicates, the evidence read
back after a restart, exports, per-pipeline policies, audit and events."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from envplane.core.audit import OperationFilter, list_operations
from envplane.errors import InvalidArgument, NotFound
from envplane.observations.service import exports, queries
from envplane.observations.service.decisions import Observation
from envplane.observations.service.observation_service import ObservationService

MB = 2**20
GB = 2**30


def obs(n: int, **fields: Any) -> Observation:
    values: dict[str, Any] = {
        "event_id": f"e{n}",
        "event_type": "",
        "pipeline": "nf-core/demo",
        "process": "ALIGN",
        "task_id": n,
        "status": "COMPLETED",
        "exit_code": 0,
        "realtime_ms": 60_000,
        "peak_rss": (100 + 10 * (n % 11)) * MB,
        "read_bytes": 0,
        "requested_memory": 2 * GB,
    }
    values.update(fields)
    return Observation(**values)


async def started(make_core: Callable[..., Any], **overrides: Any) -> ObservationService:
    service = ObservationService(await make_core(**overrides))
    await service.start()
    return service


async def test_actions_follow_the_evidence(make_core: Callable[..., Any]) -> None:
    service = await started(make_core)
    for n in range(20):
        outcome = await service.observe(obs(n))
        assert outcome.decision.kind == "RIGHT_SIZE" and outcome.observation_id > 0
    biggest = 200 * MB
    assert service.decider.known("nf-core/demo", "ALIGN").maximum == biggest
    assert outcome.decision.memory_bytes <= biggest * 1.05  # right-sized from 2 GB to about the peaks

    # An out-of-memory kill at a request under the maximum seen: retried at the maximum with
    # headroom — from the evidence, not a blind doubling of the request.
    oom = await service.observe(obs(100, status="FAILED", exit_code=137, requested_memory=150 * MB, peak_rss=149 * MB))
    assert oom.decision.kind == "RETRY_WITH_RESOURCES"
    assert biggest <= oom.decision.memory_bytes <= biggest * 1.1 < 2 * 150 * MB
    assert oom.decision.evidence["signal"].startswith("exit 137")

    # The engine's error says out of memory whatever the exit code.
    worded = await service.observe(obs(101, status="FAILED", exit_code=1, error="java.lang.OutOfMemoryError"))
    assert worded.decision.kind == "RETRY_WITH_RESOURCES"

    tool = await service.observe(obs(102, status="FAILED", exit_code=2, peak_rss=10 * MB))
    assert tool.decision.kind == "FAIL" and "not a memory failure" in tool.decision.reason

    # SIGTERM well under the request: a walltime kill is retried with twice the time, not more memory.
    timed = obs(103, status="FAILED", exit_code=143, peak_rss=100 * MB, requested_time_ms=3_600_000)
    timed = replace(timed, error="job killed: exceeded time limit")
    reply = await service.observe(timed)
    assert (reply.decision.kind, reply.decision.time_ms) == ("RETRY", 7_200_000)
    assert reply.decision.memory_bytes == 2 * GB

    submitted = await service.observe(obs(104, status="submitted", peak_rss=0))
    assert submitted.decision.kind == "NONE"


async def test_retries_stop_at_the_cap(make_core: Callable[..., Any]) -> None:
    service = await started(make_core, observations_memory_cap=300 * MB)
    for n in range(10):
        await service.observe(obs(n))
    grown = await service.observe(obs(50, status="FAILED", exit_code=137, requested_memory=280 * MB, peak_rss=279 * MB))
    assert (grown.decision.kind, grown.decision.memory_bytes) == ("RETRY_WITH_RESOURCES", 300 * MB)
    at_cap = await service.observe(
        obs(51, status="FAILED", exit_code=137, requested_memory=300 * MB, peak_rss=299 * MB)
    )
    assert at_cap.decision.kind == "FAIL" and "already the cap" in at_cap.decision.reason


async def test_a_bad_observation_is_refused_and_nothing_is_stored(make_core: Callable[..., Any]) -> None:
    service = await started(make_core)
    with pytest.raises(InvalidArgument, match=r"process is empty.*status 'DONE' is not one of.*peak_rss must be >= 0"):
        await service.observe(obs(1, process=" ", status="done", peak_rss=-1))
    with pytest.raises(InvalidArgument, match=r"status empty is not one of"):
        await service.observe(obs(2, status=""))
    page = await service.list_observations(queries.Filter(), 0, "")
    assert page.items == []

    # In a batch, a bad one is an answer of its own; the others are stored.
    outcomes = await service.observe_many([obs(3), obs(4, realtime_ms=-5), obs(5)])
    assert [bool(o.error) for o in outcomes] == [False, True, False]
    assert "realtime_ms must be >= 0, got -5" in outcomes[1].error
    page = await service.list_observations(queries.Filter(), 0, "")
    assert [s.observation.event_id for s in page.items] == ["e3", "e5"]


async def test_the_same_event_is_stored_once(make_core: Callable[..., Any]) -> None:
    service = await started(make_core)
    first = await service.observe(obs(7))
    again = await service.observe(obs(7))
    assert again.duplicate and (again.observation_id, again.action_id) == (first.observation_id, first.action_id)
    both = await service.observe_many([obs(8), obs(8)])
    assert both[1].duplicate and both[1].observation_id == both[0].observation_id
    assert len(service.decider.known("nf-core/demo", "ALIGN")) == 2  # each counted once

    # An event older than those remembered in memory: the stored row still answers.
    restarted = await started(make_core)
    old = await restarted.observe(obs(7))
    assert old.duplicate and old.observation_id == first.observation_id
    assert len(restarted.decider.known("nf-core/demo", "ALIGN")) == 2
    assert (await restarted.list_observations(queries.Filter(), 0, "")).items[-1].observation.event_id == "e8"


async def test_the_evidence_comes_back_after_a_restart(make_core: Callable[..., Any]) -> None:
    service = await started(make_core)
    for n in range(30):
        await service.observe(obs(n, read_bytes=(n + 1) * 10 * MB))
    before = await service.recommendations("nf-core/demo")
    again = await started(make_core)
    after = await again.recommendations("nf-core/demo")
    assert after.recommendations == before.recommendations
    rec = after.recommendations[0]
    assert rec.tasks_seen == 30 and rec.max_peak_rss_bytes == 200 * MB
    assert rec.memory_bytes <= rec.max_peak_rss_bytes * 1.05
    assert rec.retry_memory_bytes == sorted(rec.retry_memory_bytes) and len(rec.retry_memory_bytes) == 3


async def test_a_failed_commit_leaves_the_evidence_as_stored(
    make_core: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    service = await started(make_core)
    for n in range(5):
        await service.observe(obs(n))

    def broken(*_args: object) -> int:  # a test double of a database failure
        raise RuntimeError("disk I/O error (injected)")

    monkeypatch.setattr(queries, "insert_new", broken)
    with pytest.raises(RuntimeError, match="injected"):
        await service.observe_many([obs(10), obs(11)])
    monkeypatch.undo()
    assert len(service.decider.known("nf-core/demo", "ALIGN")) == 5
    retried = await service.observe(obs(10))
    assert not retried.duplicate and retried.decision.kind == "RIGHT_SIZE"


async def test_stats_exports_and_per_pipeline_policies(make_core: Callable[..., Any]) -> None:
    service = await started(make_core)
    for n in range(12):
        await service.observe(obs(n))
        await service.observe(obs(1000 + n, process="QC:FASTQC", peak_rss=50 * MB, requested_memory=1 * GB))
    await service.observe(obs(99, status="FAILED", exit_code=137, requested_memory=120 * MB, peak_rss=119 * MB))
    stats = {s.counts.process: s for s in await service.stats("nf-core/demo", "")}
    counts, recommended = stats["ALIGN"].counts, stats["ALIGN"].recommended
    assert (counts.observations, counts.completed, counts.failed, counts.memory_failures) == (13, 12, 1, 1)
    assert stats["ALIGN"].peak_max == 200 * MB and counts.requested_max == 2 * GB
    assert (stats["ALIGN"].peak_p50, stats["ALIGN"].peak_p95) == (140 * MB, 200 * MB)  # nearest rank of 12 peaks
    assert counts.wasted == pytest.approx(sum((2 * GB - (100 + 10 * (n % 11)) * MB) / GB / 60 for n in range(12)))
    assert 0 < recommended <= 210 * MB

    config = await service.export("nf-core/demo", "nextflow", exports.Limits(2, 64 * GB, 16, 86_400_000))
    assert "resourceLimits = [ memory: 65536.MB, cpus: 16, time: 86400.s ]" in config
    assert "maxRetries = 2" in config and "task.exitStatus in [104, 130, 131," in config
    assert "withName: 'QC:FASTQC' {" in config and "[Math.min(task.attempt, 3) - 1]" in config
    profile = json.loads(await service.export("nf-core/demo", "json", exports.Limits()))
    assert profile["processes"]["QC:FASTQC"]["max_peak_rss_bytes"] == 50 * MB
    with pytest.raises(InvalidArgument, match=r"format 'yaml' is not one of nextflow, json"):
        await service.export("nf-core/demo", "yaml", exports.Limits())
    with pytest.raises(NotFound, match=r"no observations of pipeline 'other'"):
        await service.recommendations("other")

    with pytest.raises(InvalidArgument, match=r"no policy named 'magic'"):
        await service.set_pipeline("nf-core/demo", "magic", None)
    await service.set_pipeline("nf-core/demo", "seqera-max", 256 * MB)
    decided = await service.observe(obs(200))
    assert decided.decision.evidence["policy"] == "seqera-max" and decided.decision.evidence["cap"] == 256 * MB
    restarted = await started(make_core)
    assert restarted.policy_for("nf-core/demo").name == "seqera-max"
    [(settings, _)] = [p for p in await restarted.pipelines() if p[0].name == "nf-core/demo"]
    assert (settings.policy, settings.memory_cap) == ("seqera-max", 256 * MB)

    ops, _ = await service.core.store.run(lambda db: list_operations(db, OperationFilter(), limit=50))
    assert {op.operation for op in ops} == {"observation.decide", "observation.pipeline"}
    assert any(op.subject.id == "nf-core/demo/ALIGN/99" and op.subject.node_id == "ALIGN" for op in ops)


async def test_forgetting_drops_the_rows_and_the_evidence(make_core: Callable[..., Any]) -> None:
    service = await started(make_core)
    for n in range(10):
        await service.observe(obs(n))
        await service.observe(obs(100 + n, process="QC", peak_rss=50 * MB))
    with pytest.raises(InvalidArgument, match=r"name the pipeline"):
        await service.forget("")
    with pytest.raises(NotFound, match=r"no observations of process 'NOPE' of pipeline 'nf-core/demo'"):
        await service.forget("nf-core/demo", "NOPE")

    assert await service.forget("nf-core/demo", "QC") == (10, 1)
    assert len(service.decider.known("nf-core/demo", "QC")) == 0
    assert len(service.decider.known("nf-core/demo", "ALIGN")) == 10
    again = await service.observe(obs(100, process="QC", peak_rss=50 * MB))  # its event id: new again
    assert not again.duplicate and again.decision.evidence["tasks_seen"] == 1

    assert await service.forget("nf-core/demo") == (11, 2)
    with pytest.raises(NotFound, match=r"no observations of pipeline 'nf-core/demo'"):
        await service.recommendations("nf-core/demo")
    restarted = await started(make_core)  # nothing comes back
    assert len(restarted.decider.known("nf-core/demo", "ALIGN")) == 0
    ops, _ = await service.core.store.run(lambda db: list_operations(db, OperationFilter(), limit=50))
    forgets = [op for op in ops if op.operation == "observation.forget"]
    assert [op.subject.id for op in forgets] == ["nf-core/demo", "nf-core/demo/QC"]  # newest first
