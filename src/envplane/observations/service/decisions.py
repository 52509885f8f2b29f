"""Observations in, decisions out: what envplane answers each task observation with.

A :class:`Decider` keeps, per (pipeline, process), what completed (``replay.Known``) and asks
its policy (the rightsizer by default):

* a task that **completed**: ``RIGHT_SIZE``, the memory to request for the next run of this
  process, from the evidence so far;
* a task that **failed like an out-of-memory kill** (exit 137, 139, 143, 104 or 130-145):
  ``RETRY_WITH_RESOURCES`` with memory from the evidence (the maximum seen with headroom, or
  the failed peak grown), not a blind doubling;
* a task that failed otherwise: ``FAIL`` — a tool's error is not retried with more memory;
* anything else (submitted, started): ``NONE``.

An observation is checked first, and a bad one (a negative size, an unknown status, no
process) is refused with a message that names the problem; nothing is recorded from it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from envplane.errors import InvalidArgument
from envplane.observations.service.policies import RightSizer
from envplane.observations.service.replay import Known, Policy
from envplane.observations.service.traces import Task

OOM_EXITS = frozenset({104, *range(130, 146)})  # 137 SIGKILL, 139 SIGSEGV, 143 SIGTERM among them
STATUSES = ("SUBMITTED", "RUNNING", "STARTED", "COMPLETED", "CACHED", "FAILED", "ABORTED")


@dataclass(frozen=True)
class Observation:
    """The fields of the original ``TaskObservation`` that a decision uses."""

    event_id: str
    event_type: str
    pipeline: str
    process: str
    task_id: int
    status: str
    exit_code: int
    realtime_ms: int
    peak_rss: int
    read_bytes: int


@dataclass(frozen=True)
class Decision:
    kind: str  # NONE | RETRY | RETRY_WITH_RESOURCES | RIGHT_SIZE | FAIL
    reason: str
    memory_bytes: int = 0
    evidence: dict[str, Any] = field(default_factory=dict)

    def details(self) -> dict[str, Any]:
        return {"kind": self.kind, "memory_bytes": self.memory_bytes, "reason": self.reason, "evidence": self.evidence}


def check(observation: Observation) -> None:
    problems = []
    if not observation.process:
        problems.append("process_name is empty: an observation is about a process")
    status = observation.status.upper()
    if status and status not in STATUSES:
        problems.append(f"status {observation.status!r} is not one of {', '.join(STATUSES)}")
    for name in ("realtime_ms", "peak_rss", "read_bytes", "task_id"):
        if getattr(observation, name) < 0:
            problems.append(f"{name} must be >= 0, got {getattr(observation, name)}")
    if problems:
        raise InvalidArgument("bad observation: " + "; ".join(problems))


class Decider:
    def __init__(self, policy: Policy | None = None) -> None:
        self.policy: Policy = policy or RightSizer()
        self._known: dict[tuple[str, str], Known] = {}
        self._lock = threading.Lock()  # the embeddable server answers on a thread pool

    def known(self, pipeline: str, process: str) -> Known:
        key = (pipeline, process)
        if key not in self._known:
            self._known[key] = Known(process)
        return self._known[key]

    def decide(self, observation: Observation) -> Decision:
        check(observation)
        status = observation.status.upper()
        with self._lock:
            known = self.known(observation.pipeline, observation.process)
            task = Task(
                workflow=observation.pipeline,
                run="",
                task_id=str(observation.task_id),
                process=observation.process,
                attempt=1,
                status=status,
                exit=observation.exit_code,
                request=0,
                peak_rss=observation.peak_rss,
                realtime=float(observation.realtime_ms),
                submit=0.0,
                complete=0.0,
                input_size=observation.read_bytes,
            )
            evidence = {"tasks_seen": len(known), "max_peak_rss": known.maximum}
            if status == "COMPLETED" and observation.peak_rss > 0:
                known.add(task)
                memory = int(self.policy.first(task, known))
                evidence.update(tasks_seen=len(known), max_peak_rss=known.maximum)
                return Decision(
                    "RIGHT_SIZE", f"next {observation.process}: from {len(known)} completed", memory, evidence
                )
            if status == "FAILED" and observation.exit_code in OOM_EXITS:
                failed = max(observation.peak_rss, 1)
                memory = int(self.policy.retry(task, known, [failed]))
                why = f"exit {observation.exit_code} looks like an out-of-memory kill: retry with more memory"
                return Decision("RETRY_WITH_RESOURCES", why, memory, {**evidence, "failed_peak_rss": failed})
            if status == "FAILED":
                why = f"exit {observation.exit_code} is not a memory failure: not retried with more memory"
                return Decision("FAIL", why, 0, evidence)
            return Decision("NONE", f"{status.lower() or 'an event'}: nothing to decide yet", 0, evidence)
