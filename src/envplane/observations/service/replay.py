"""Replaying real traces through a memory policy, online, scored as Sizey scores it.

The protocol (Sizey, IEEE CLUSTER 2024, with the issue's corrections):

* per workflow (trace file) and process; tasks that completed with a measured peak (a failed
  attempt in the trace says nothing of what the task needs: it is left out, and counted);
* processes with fewer than 34 such tasks are dropped, and, as Sizey's ``main.py`` does, those
  with any task of realtime 0;
* the first 30 % in submission order are the history; the rest are replayed in order;
* **online means online**: a task's allocation may use the history and the replayed tasks that
  had *completed* before its ``submit`` time, never a later one;
* an attempt whose allocation is below the task's real ``peak_rss`` fails: it wastes its whole
  allocation for the task's runtime, and the policy is asked for the next attempt's;
* waste of the attempt that succeeds is (allocation − peak_rss) × realtime; usage is
  peak_rss × realtime; MAQ = usage / (usage + waste); GB = 2^30 bytes, hours.
"""

from __future__ import annotations

import bisect
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import IO, Protocol

from envplane.errors import InvalidArgument
from envplane.observations.service.traces import Task

MIN_TASKS = 34
HISTORY = 0.3
MAX_ATTEMPTS = 32
GBH = 2**30 * 3_600_000  # byte·ms in a GB·h


class Known:
    """What is known of one process at a moment: its completed tasks, kept sorted by peak (for
    quantiles and prefix sums) and in completion order (inputs, for models)."""

    def __init__(self, process: str) -> None:
        self.process = process
        self.peaks: list[int] = []  # sorted
        self.inputs: list[int] = []  # completion order, with peaks_in_order
        self.peaks_in_order: list[int] = []
        self.maximum = 0
        self.input_min = 0  # of inputs (0 when none known)
        self.input_max = 0
        self.cache: object = None  # a policy's own incremental state (policies._Arrays)
        # The same evidence split by the tasks' requests (a process whose tasks came with
        # different requests: a JVM's heap follows its request); None inside a split.
        self.by_request: dict[int, Known] | None = {}

    def __len__(self) -> int:
        return len(self.peaks_in_order)

    def add(self, task: Task) -> None:
        bisect.insort(self.peaks, task.peak_rss)
        self.inputs.append(task.input_size)
        self.peaks_in_order.append(task.peak_rss)
        self.maximum = max(self.maximum, task.peak_rss)
        first = len(self.inputs) == 1
        self.input_min = task.input_size if first else min(self.input_min, task.input_size)
        self.input_max = task.input_size if first else max(self.input_max, task.input_size)
        if self.by_request is not None and task.request > 0:
            same = self.by_request.get(task.request)
            if same is None:
                same = self.by_request[task.request] = Known(self.process)
                same.by_request = None
            same.add(task)

    def quantile(self, q: float) -> int:
        """The q-quantile of the peaks seen (nearest rank)."""
        index = min(len(self.peaks) - 1, max(0, math.ceil(q * len(self.peaks)) - 1))
        return self.peaks[index]


class Policy(Protocol):
    name: str

    def first(self, task: Task, known: Known) -> int:
        """The first attempt's memory, in bytes (``known`` may be empty)."""
        ...

    def retry(self, task: Task, known: Known, failed: Sequence[int]) -> int:
        """The next attempt's memory after ``failed`` (each was below the task's need)."""
        ...


@dataclass
class Score:
    tasks: int = 0
    attempts: int = 0
    failures: int = 0
    waste: float = 0.0  # GB·h
    usage: float = 0.0  # GB·h

    @property
    def maq(self) -> float:
        total = self.usage + self.waste
        return self.usage / total if total else 1.0

    def add(self, other: Score) -> None:
        self.tasks += other.tasks
        self.attempts += other.attempts
        self.failures += other.failures
        self.waste += other.waste
        self.usage += other.usage


@dataclass
class Replay:
    workflow: str
    policy: str
    total: Score = field(default_factory=Score)
    processes: dict[str, Score] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)  # process -> why
    left_out: int = 0  # attempts without a measured peak (failed in the trace)


def eligible(tasks: Iterable[Task]) -> tuple[dict[str, list[Task]], dict[str, str], int]:
    """Tasks by process under the protocol, the processes dropped (and why), and the
    attempts left out for having no measured peak."""
    by_process: dict[str, list[Task]] = defaultdict(list)
    left_out = 0
    for task in tasks:
        if task.status != "COMPLETED" or task.peak_rss <= 0:
            left_out += 1
            continue
        by_process[task.process].append(task)
    kept: dict[str, list[Task]] = {}
    dropped: dict[str, str] = {}
    for process, items in by_process.items():
        if len(items) < MIN_TASKS:
            dropped[process] = f"{len(items)} tasks (< {MIN_TASKS})"
        elif any(t.realtime <= 0 for t in items):
            dropped[process] = "a task with realtime 0 (Sizey's filter)"
        else:
            kept[process] = sorted(items, key=lambda t: (t.submit, t.task_id))
    return kept, dropped, left_out


def replay(
    workflow: str,
    tasks: Sequence[Task],
    policy: Policy,
    *,
    allocations: IO[str] | None = None,
    history: float = HISTORY,
) -> Replay:
    """``tasks`` of one workflow through ``policy``; ``history`` is the fraction of each
    process's tasks (in submission order) known before the replay starts."""
    if not 0 <= history < 1:
        raise InvalidArgument(f"the history split must be in [0, 1), got {history}")
    kept, dropped, left_out = eligible(tasks)
    result = Replay(workflow, policy.name, dropped=dropped, left_out=left_out)
    for process, items in sorted(kept.items()):
        score = Score()
        known = Known(process)
        split = len(items) - math.ceil((1 - history) * len(items))
        for task in items[:split]:
            known.add(task)
        online = items[split:]
        pending = sorted(online, key=lambda t: t.complete)  # what completes, in order
        done = 0
        for task in online:
            while done < len(pending) and pending[done].complete < task.submit:
                known.add(pending[done])
                done += 1
            score.add(_attempts(task, known, policy, allocations))
        result.processes[process] = score
        result.total.add(score)
    return result


def _attempts(task: Task, known: Known, policy: Policy, out: IO[str] | None) -> Score:
    score = Score(tasks=1, usage=task.peak_rss * task.realtime / GBH)
    failed: list[int] = []
    allocation = policy.first(task, known)
    while True:
        allocation = max(int(allocation), 1)
        score.attempts += 1
        if out is not None:
            line = {"workflow": task.workflow, "run": task.run, "task_id": task.task_id}
            out.write(json.dumps({**line, "attempt": len(failed) + 1, "allocation_bytes": allocation}) + "\n")
        if allocation >= task.peak_rss or len(failed) + 1 >= MAX_ATTEMPTS:
            allocation = max(allocation, task.peak_rss)  # (MAX_ATTEMPTS: a policy that never grows)
            score.waste += (allocation - task.peak_rss) * task.realtime / GBH
            return score
        score.failures += 1
        score.waste += allocation * task.realtime / GBH
        failed.append(allocation)
        allocation = policy.retry(task, known, failed)
