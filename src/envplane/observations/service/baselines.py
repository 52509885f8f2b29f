"""The published baselines, from their definitions, for the replay (``replay.Policy``).

* **presets**: the workflow's own request; doubled on failure (nf-core's ``* task.attempt``).
* **seqera-max**: Seqera's pipeline optimization, the maximum peak seen for the process; online,
  the running maximum of the tasks completed so far; the request until one has; doubled on
  failure ("retry with dynamic resources").
* **witt-p95**: Witt et al.'s percentile model, the 95th percentile of past peaks; doubled on
  failure.
* **tovar**: Tovar et al.'s first allocation in waste-minimizing mode: the peak seen that
  minimizes the expected waste of a first attempt plus, where it fails, a retry at the maximum
  seen; on failure the maximum seen (doubling once past it).
"""

from __future__ import annotations

from collections.abc import Sequence

from envplane.observations.service.replay import Known
from envplane.observations.service.traces import Task


def _double(failed: Sequence[int]) -> int:
    return 2 * failed[-1]


class Presets:
    name = "presets"

    def first(self, task: Task, known: Known) -> int:
        return task.request

    def retry(self, task: Task, known: Known, failed: Sequence[int]) -> int:
        return _double(failed)


class SeqeraMax:
    name = "seqera-max"

    def first(self, task: Task, known: Known) -> int:
        return known.maximum if len(known) else task.request

    def retry(self, task: Task, known: Known, failed: Sequence[int]) -> int:
        return _double(failed)


class WittP95:
    name = "witt-p95"

    def first(self, task: Task, known: Known) -> int:
        return known.quantile(0.95) if len(known) else task.request

    def retry(self, task: Task, known: Known, failed: Sequence[int]) -> int:
        return _double(failed)


class Tovar:
    name = "tovar"

    def first(self, task: Task, known: Known) -> int:
        if not len(known):
            return task.request
        # cost(a) over the tasks seen (unit runtime: the next task's runtime is a common
        # factor): a - p where p <= a, else a (the failed attempt) + (max - p) (the retry).
        peaks = known.peaks
        n = len(peaks)
        maximum = known.maximum
        total_peaks = sum(peaks)
        best, best_cost = maximum, float("inf")
        for k, a in enumerate(peaks):  # a = peaks[k]; tasks 0..k fit, k+1..n-1 fail
            above = n - (k + 1)
            cost = a * n + maximum * above - total_peaks
            if cost < best_cost:
                best, best_cost = a, cost
        return best

    def retry(self, task: Task, known: Known, failed: Sequence[int]) -> int:
        if len(known) and known.maximum > failed[-1]:
            return known.maximum
        return _double(failed)


BASELINES = (Presets(), SeqeraMax(), WittP95(), Tovar())
