"""Observations in, decisions out: what envplane answers each task observation with.

A :class:`Decider` keeps, per (pipeline, process), what completed (``replay.Known``) and asks
the pipeline's policy (the rightsizer by default):

* a task that **completed**: ``RIGHT_SIZE``, the memory to request for the next run of this
  process, from the evidence so far;
* a task that **failed like an out-of-memory kill**: an OOM-like exit (137, 139, 143, 104 or
  130-145) with its peak near its request (or either unknown), or the engine's error saying so
  whatever the exit: ``RETRY_WITH_RESOURCES`` with memory from the evidence (the maximum seen
  with headroom, or the failed allocation grown), not a blind doubling, bounded by the cap;
  a task that already had the cap is ``FAIL``;
* an OOM-like exit far under its request whose error speaks of time: ``RETRY`` with twice the
  time; with no such word: ``RETRY`` as it was (a signal from outside: preemption, a restart);
* a task that failed otherwise: ``FAIL`` — a tool's error is not retried with more memory;
* anything else (submitted, started, cached, aborted): ``NONE``.

An observation is checked first, and a bad one (a negative size, an unknown status, no
process) is refused with a message that names the problem; nothing is recorded from it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from envplane.errors import InvalidArgument
from envplane.observations.service.policies import RightSizer
from envplane.observations.service.replay import Known, Policy
from envplane.observations.service.traces import Task

OOM_EXITS = frozenset({104, *range(130, 146)})  # 137 SIGKILL, 139 SIGSEGV, 143 SIGTERM among them
STATUSES = ("SUBMITTED", "STARTED", "RUNNING", "COMPLETED", "CACHED", "FAILED", "ABORTED")
KINDS = ("NONE", "RETRY", "RETRY_WITH_RESOURCES", "RIGHT_SIZE", "FAIL")
NEAR_REQUEST = 0.8  # a peak this close to its request counts as having hit it
MEMORY_WORDS = re.compile(r"out of memory|outofmemory|\boom\b|oom-kill|memory limit|cannot allocate memory", re.I)
TIME_WORDS = re.compile(r"time ?limit|walltime|timed? ?out|\btimeout\b|due to time", re.I)
_SIZES = ("requested_memory", "realtime_ms", "duration_ms", "peak_rss", "peak_vmem", "read_bytes", "write_bytes")


@dataclass(frozen=True)
class Observation:
    """One task's observation, as every face hands it over (sizes bytes, times ms, 0 = unknown)."""

    event_id: str
    event_type: str
    pipeline: str
    process: str
    task_id: int | str
    status: str
    exit_code: int
    realtime_ms: int
    peak_rss: int
    read_bytes: int
    run: str = ""
    attempt: int = 1
    requested_memory: int = 0
    requested_cpus: float = 0.0
    requested_time_ms: int = 0
    duration_ms: int = 0
    cpu_percent: float = 0.0
    peak_vmem: int = 0
    write_bytes: int = 0
    input_bytes: int = 0
    error: str = ""
    task_hash: str = ""
    task_name: str = ""
    submitted_at: float = 0.0
    completed_at: float = 0.0
    source: str = ""

    @property
    def input_size(self) -> int:
        return self.input_bytes or self.read_bytes


@dataclass(frozen=True)
class Decision:
    kind: str  # one of KINDS
    reason: str
    memory_bytes: int = 0
    evidence: dict[str, Any] = field(default_factory=dict)
    time_ms: int = 0
    cpus: float = 0.0

    def details(self) -> dict[str, Any]:
        details = {"kind": self.kind, "memory_bytes": self.memory_bytes, "reason": self.reason}
        if self.time_ms:
            details["time_ms"] = self.time_ms
        if self.cpus:
            details["cpus"] = self.cpus
        return {**details, "evidence": self.evidence}

    @classmethod
    def of_details(cls, details: dict[str, Any]) -> Decision:
        return cls(
            details["kind"],
            details.get("reason", ""),
            int(details.get("memory_bytes", 0)),
            dict(details.get("evidence", {})),
            int(details.get("time_ms", 0)),
            float(details.get("cpus", 0.0)),
        )


MEMORY_FAILURE = "out of memory"  # how the reason of every memory failure's decision begins


def is_memory_failure(decision: Decision) -> bool:
    """A failure decided as out of memory: retried with more (RETRY_WITH_RESOURCES), or failed
    at the cap (FAIL). ``queries.counts`` counts the same in SQL."""
    return decision.kind in ("RETRY_WITH_RESOURCES", "FAIL") and decision.reason.startswith(MEMORY_FAILURE)


def check(observation: Observation) -> None:
    """Refuse a bad observation with every problem named (nothing is recorded from it)."""
    problems = []
    if not observation.process.strip():
        problems.append("process is empty: an observation is about a process")
    if len(observation.process) > 256 or len(observation.pipeline) > 128:
        problems.append("pipeline (128) or process (256) is too long")
    status = observation.status.upper()
    if status not in STATUSES:
        shown = repr(observation.status) if observation.status else "empty"
        problems.append(f"status {shown} is not one of {', '.join(STATUSES)}")
    for name in _SIZES:
        if getattr(observation, name) < 0:
            problems.append(f"{name} must be >= 0, got {getattr(observation, name)}")
    if observation.input_bytes < 0:
        problems.append(f"input_bytes must be >= 0, got {observation.input_bytes}")
    if observation.requested_cpus < 0 or observation.cpu_percent < 0 or observation.requested_time_ms < 0:
        problems.append("requested_cpus, cpu_percent and requested_time_ms must be >= 0")
    if isinstance(observation.task_id, int) and observation.task_id < 0:
        problems.append(f"task_id must be >= 0, got {observation.task_id}")
    if observation.attempt < 1:
        problems.append(f"attempt counts from 1, got {observation.attempt}")
    if problems:
        raise InvalidArgument("bad observation: " + "; ".join(problems))


def memory_signal(observation: Observation) -> str:
    """Why a failure looks like an out-of-memory kill ("" when it does not)."""
    if MEMORY_WORDS.search(observation.error):
        return "the error says so"
    if observation.exit_code not in OOM_EXITS:
        return ""
    request, peak = observation.requested_memory, observation.peak_rss
    if not request or not peak:
        return f"exit {observation.exit_code}"
    if peak >= NEAR_REQUEST * request:
        return f"exit {observation.exit_code} with the peak at {peak / request:.0%} of the request"
    return ""


class Decider:
    """The decisions of one daemon (or one ``AiServer``): the evidence per (pipeline, process),
    each pipeline's policy and memory cap."""

    def __init__(
        self,
        policy: Policy | None = None,
        *,
        policy_for: Callable[[str], Policy] | None = None,
        cap_for: Callable[[str], int] | None = None,
    ) -> None:
        default: Policy = policy or RightSizer()
        self.policy_for = policy_for or (lambda _pipeline: default)
        self.cap_for = cap_for or (lambda _pipeline: 0)
        self._known: dict[tuple[str, str], Known] = {}
        self._lock = threading.Lock()  # the embeddable server answers on a thread pool

    def known(self, pipeline: str, process: str) -> Known:
        key = (pipeline, process)
        if key not in self._known:
            self._known[key] = Known(process)
        return self._known[key]

    def processes(self) -> list[tuple[str, str]]:
        return list(self._known)

    def forget(self, pipeline: str, process: str) -> None:
        self._known.pop((pipeline, process), None)

    def learn(self, observation: Observation) -> None:
        """Add a completed task to the evidence without deciding (rebuilding it at start)."""
        if observation.status.upper() == "COMPLETED" and observation.peak_rss > 0:
            self.known(observation.pipeline, observation.process).add(as_task(observation))

    def decide(self, observation: Observation, *, checked: bool = False) -> Decision:
        """The decision for ``observation`` (``checked``: the caller has run ``check`` on it)."""
        if not checked:
            check(observation)
        with self._lock:
            return self._decide(observation)

    def _decide(self, observation: Observation) -> Decision:
        status = observation.status.upper()
        policy = self.policy_for(observation.pipeline)
        cap = self.cap_for(observation.pipeline)
        known = self.known(observation.pipeline, observation.process)
        task = as_task(observation)
        evidence: dict[str, Any] = {
            "policy": policy.name,
            "tasks_seen": len(known),
            "max_peak_rss": known.maximum,
            "cap": cap,
        }
        if status == "COMPLETED" and observation.peak_rss > 0:
            known.add(task)
            following = replace(task, attempt=1)  # the next run of this process is a first attempt
            memory = capped(int(policy.first(following, known)), cap)
            evidence.update(tasks_seen=len(known), max_peak_rss=known.maximum)
            why = f"next {observation.process}: from {len(known)} completed task(s)"
            return Decision("RIGHT_SIZE", why, memory, evidence)
        if status != "FAILED":
            return Decision("NONE", f"{status.lower()}: nothing to decide", 0, evidence)
        signal = memory_signal(observation)
        if signal:
            failed = max(observation.requested_memory, observation.peak_rss, 1)
            memory = int(policy.retry(task, known, [failed]))
            evidence.update(failed_peak_rss=observation.peak_rss, signal=signal)
            if cap and failed >= cap:
                why = f"{MEMORY_FAILURE} ({signal}) at {failed} bytes, which is already the cap ({cap})"
                return Decision("FAIL", why, 0, evidence)
            memory = capped(max(memory, failed + 1), cap)
            return Decision("RETRY_WITH_RESOURCES", f"{MEMORY_FAILURE} ({signal}): retry with more", memory, evidence)
        if observation.exit_code in OOM_EXITS:
            if TIME_WORDS.search(observation.error):
                time_ms = 2 * (observation.requested_time_ms or observation.realtime_ms)
                evidence.update(signal="the error speaks of time")
                why = f"exit {observation.exit_code} under its memory and the error speaks of time: twice the time"
                return Decision("RETRY", why, observation.requested_memory, evidence, time_ms=time_ms)
            evidence.update(signal=f"exit {observation.exit_code}")
            why = f"exit {observation.exit_code} (a signal) with the peak well under the request: retried as it was"
            return Decision("RETRY", why, observation.requested_memory, evidence)
        why = f"exit {observation.exit_code} is not a memory failure: not retried with more memory"
        return Decision("FAIL", why, 0, evidence)


def capped(memory: int, cap: int) -> int:
    """``memory``, at most ``cap`` (0: no cap)."""
    return min(memory, cap) if cap else memory


def as_task(observation: Observation) -> Task:
    return Task(
        workflow=observation.pipeline,
        run=observation.run,
        task_id=str(observation.task_id),
        process=observation.process,
        attempt=observation.attempt,
        status=observation.status.upper(),
        exit=observation.exit_code,
        request=observation.requested_memory,
        peak_rss=observation.peak_rss,
        realtime=float(observation.realtime_ms),
        submit=observation.submitted_at * 1000,
        complete=observation.completed_at * 1000,
        input_size=observation.input_size,
    )
