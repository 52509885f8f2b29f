"""envplane.v1 observation messages <-> the service's records (both faces and the clients)."""

from __future__ import annotations

from envplane.observations.service.decisions import KINDS, Decision, Observation
from envplane.observations.service.queries import Stored
from envplane.v1 import observations_pb2 as pb

_PLAIN = (
    "event_id", "pipeline", "process", "run", "attempt", "status", "exit_code", "requested_cpus",
    "requested_time_ms", "realtime_ms", "duration_ms", "cpu_percent", "read_bytes", "write_bytes",
    "input_bytes", "error", "task_hash", "task_name", "submitted_at", "completed_at", "source",
)  # fmt: skip


def observation(message: pb.TaskObservation, *, source: str = "") -> Observation:
    """A request's observation (``source`` set by the face it came through)."""
    values = {name: getattr(message, name) for name in _PLAIN}
    values["source"] = source or message.source or "grpc"
    return Observation(
        event_type="",
        task_id=message.task_id,
        requested_memory=message.requested_memory_bytes,
        peak_rss=message.peak_rss_bytes,
        peak_vmem=message.peak_vmem_bytes,
        **values,
    )


def task_observation(observation: Observation) -> pb.TaskObservation:
    values = {name: getattr(observation, name) for name in _PLAIN}
    return pb.TaskObservation(
        task_id=str(observation.task_id),
        requested_memory_bytes=observation.requested_memory,
        peak_rss_bytes=observation.peak_rss,
        peak_vmem_bytes=observation.peak_vmem,
        **values,
    )


def action(decision: Decision, action_id: str) -> pb.Action:
    e = decision.evidence
    return pb.Action(
        kind=KINDS.index(decision.kind),  # type: ignore[arg-type]  # the enum's numbers are KINDS' order
        memory_bytes=decision.memory_bytes,
        cpus=decision.cpus,
        time_ms=decision.time_ms,
        reason=decision.reason,
        action_id=action_id,
        evidence=pb.Evidence(
            policy=str(e.get("policy", "")),
            tasks_seen=int(e.get("tasks_seen", 0)),
            max_peak_rss_bytes=int(e.get("max_peak_rss", 0)),
            failed_peak_rss_bytes=int(e.get("failed_peak_rss", 0)),
            cap_bytes=int(e.get("cap", 0)),
            signal=str(e.get("signal", "")),
        ),
    )


def stored(row: Stored) -> pb.StoredObservation:
    return pb.StoredObservation(
        id=row.id,
        observation=task_observation(row.observation),
        action=action(row.decision, row.action_id),
        recorded_at=row.recorded_at,
    )
