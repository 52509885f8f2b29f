"""envplane's memory policies for the replay and the daemon (``replay.Policy``).

**rightsizer** (the default): per process, online.

1. The peak is modelled from the input size, by whichever model explains the (log) peaks of the
   tasks completed so far better: a power law (``log peak = a + b log input``) or an offset plus
   a slope (``peak = a + b input``: a tool with a fixed base, a JVM's heap); only where it
   explains ``min_r2`` of them. Otherwise the model is the peaks' own distribution.
2. The errors of the tasks seen, put on this task's prediction, are the peaks it may have.
3. The first allocation is the one of those that minimizes the expected cost of this task:
   ``allocation - peak`` where it fits, ``allocation + (retry - peak) + penalty × retry``
   where it fails (the failed attempt is wasted whole, the retry over-allocates, and a failure
   costs besides: ``penalty`` is the knob between waste and failures).
4. Bounds from what was seen: for an input within the range seen, never above the maximum
   seen; below it, never under the least peak seen (an offset extrapolates badly downwards).
   Where the maximum is the choice (the model said more, or ``margin_min_known`` tasks are
   known), it gets the room of the last step a new maximum took, at most ``record_cap``: the
   task may be a new record, and a failure costs a whole allocation where a few percent more
   costs a few percent.
5. A retry below the maximum seen goes to it (with ``headroom``); at or past it, the failed
   allocation grows by ``growth``.
6. The engine's request is evidence too. Where a process's tasks came with different requests,
   a task's evidence is the tasks with its own request (once ``min_same_request`` are known): a
   JVM sizes its heap from the request, and a larger request says the engine knows a task
   needs more. While that evidence never passed the request, neither a first attempt nor a
   retry asks for more than it (in the sizey/ traces no completed task of 13,510 passed its
   request). A retry the engine made (``attempt`` > 1: its earlier attempts failed where the
   policy could not see them) gets the engine's own request. On eager this took the waste from
   −22 % to −37 % against the running maximum and the failures from 84 to 63 (71 for it).

Until ``min_known`` tasks have completed it allocates the maximum seen (or the request). The
model is refitted once the tasks known grew by ``refit`` (1/32) since the last fit, and always
while fewer than 64 are known: a fit at every decision was most of the daemon's cost per
observation (43 µs a decision, 18 µs so), for 0.3 % more waste and one failure more on the
sizey/ traces. The settings are the best found on the sizey/ traces (``benchmarks/README.md``
has the table).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from envplane.observations.service.replay import Known
from envplane.observations.service.traces import Task


@dataclass
class RightSizer:
    name: str = "rightsizer"
    # The best setting found so far on the sizey/ traces (benchmarks/README.md has the table).
    penalty: float = 10.0  # a failure's extra cost, as a multiple of the retry's allocation
    headroom: float = 1.05  # on a retry
    growth: float = 1.25  # a retry at or past the maximum seen grows the failed allocation this much
    min_known: int = 5
    min_r2: float = 0.8  # the input size is used only when it explains this much of the (log) peaks
    min_r2_affine: float = 0.8  # the same for the offset-plus-slope model
    record_cap: float = 0.05  # at most this margin over the maximum seen (see first())
    margin_min_known: int = 20  # the margin also when the choice is the maximum itself, once this many are known
    refit: float = 1 / 32  # refit the model once the tasks known grew by this fraction (0: at every decision)
    refit_below: int = 64  # ... and always while fewer are known
    min_same_request: int = 3  # tasks with a task's own request that make them its evidence

    def _fit(self, known: Known) -> _Fit:
        """The model of the peaks over every task known: whichever explains the (log) peaks
        better, a power law (log-log line) or an offset plus a slope (a tool with a fixed base, a
        JVM's heap), and only if it explains ``min_r2`` of them; else none (the peaks as they are).
        Its errors, as factors, sorted: put on a task's prediction, the peaks it may have."""
        peaks, logs, inputs, u = _arrays(known)
        centred = logs - _mean(logs)
        total = float(centred @ centred)
        best: tuple[float, str, np.ndarray, float, float] | None = None  # (r2, kind, fitted, a, b)
        if total > 0 and known.input_max - known.input_min > 0:
            for kind, (fitted, a, b), floor in (
                ("power", _power_law(u, logs), self.min_r2),
                ("affine", _affine(inputs, peaks), self.min_r2_affine),
            ):
                if fitted is None:
                    continue
                error = logs - fitted
                r2 = 1 - float(error @ error) / total
                if r2 >= floor and (best is None or r2 > best[0]):
                    best = (r2, kind, fitted, a, b)
        ordered = np.sort(peaks)
        if best is None:
            return _Fit(len(known), "none", 0.0, 0.0, ordered, ordered)
        _, kind, fitted, a, b = best
        return _Fit(len(known), kind, a, b, np.sort(np.exp(logs - fitted)), ordered)

    def _hypothetical(self, task: Task, known: Known) -> np.ndarray:
        """The peaks this task may have (sorted): the model's errors put on its prediction, or,
        with no model (or no input size), the peaks seen. The model is refitted once the tasks
        known have grown by ``refit`` since the last fit (always while fewer than
        ``refit_below`` are known): a fit per decision was most of a decision's cost."""
        cache = _arrays_of(known)
        fit, n = cache.fit, len(known)
        if fit is None or n < fit.n or (n > fit.n and (n < self.refit_below or n - fit.n >= self.refit * fit.n)):
            fit = cache.fit = self._fit(known)
        if task.input_size <= 0 or fit.kind == "none":
            return fit.peaks
        x = float(task.input_size)
        if fit.kind == "power":
            return float(np.exp(fit.intercept + fit.slope * np.log1p(x))) * fit.base
        return (fit.intercept + fit.slope * x) * fit.base

    def _first(self, task: Task, known: Known) -> int:
        if len(known) < self.min_known:
            return known.maximum if len(known) else task.request
        h = self._hypothetical(task, known)
        n = len(h)
        retry = max(h[-1], known.maximum) * self.headroom
        k = np.arange(n)
        cost = h * n + (retry + self.penalty * retry) * (n - 1 - k) - float(np.add.reduce(h))
        choice = float(h[int(np.argmin(cost))])
        beyond = choice > known.maximum  # the model puts this task above every peak seen
        if task.input_size <= known.input_max:  # within what was seen: never above the maximum seen
            choice = min(choice, float(known.maximum))
        if 0 < task.input_size < known.input_min:  # below what was seen: a model extrapolates an
            choice = max(choice, float(known.peaks[0]))  # offset badly (a JVM's heap); no less than the least seen
        at_top = len(known) >= self.margin_min_known
        if (beyond or at_top) and choice == known.maximum and len(known.peaks) >= 2:
            # The maximum, where the model said more (or, with enough known, chose it): the task
            # may be a new record. Leave it the room of the last step a record took (the maximum
            # over the peak below it), up to record_cap: a failure costs a whole allocation, a
            # few percent more costs a few percent.
            step = known.maximum / max(known.peaks[-2], 1) - 1
            choice = known.maximum * (1 + min(max(step, 0.0), self.record_cap))
        return int(choice)

    def first(self, task: Task, known: Known) -> int:
        """The first attempt's memory. A retry the engine made (``attempt`` > 1: its earlier
        attempts failed where this policy could not see) gets the engine's own request; the
        evidence is the tasks with this task's request where requests differ (``_evidence``);
        and while that evidence never passed the request, no more than the request."""
        if task.attempt > 1 and task.request > 0:
            return task.request
        evidence = self._evidence(task, known)
        choice = self._first(task, evidence)
        if task.request > 0 and evidence.maximum <= task.request:
            choice = min(choice, task.request)
        return choice

    def _evidence(self, task: Task, known: Known) -> Known:
        """The tasks that came with this task's request, where the process's tasks came with
        different requests and ``min_same_request`` of them are known: a JVM sizes its heap
        from the request, and an engine's larger request says a task needs more."""
        split = known.by_request
        if split and len(split) > 1 and task.request in split and len(split[task.request]) >= self.min_same_request:
            return split[task.request]
        return known

    def retry(self, task: Task, known: Known, failed: Sequence[int]) -> int:
        """Below the maximum seen: to it (it held every task so far). At or past it: grow. No
        more than the request while the evidence never passed it (it holds the task)."""
        evidence = self._evidence(task, known)
        last = failed[-1]
        if len(evidence) and last < evidence.maximum:
            ceiling = float(evidence.maximum)
            if len(evidence) >= self.min_known and task.input_size > evidence.input_max:
                ceiling = max(ceiling, float(self._hypothetical(task, evidence)[-1]))  # a larger input than any seen
            choice = int(max(ceiling * self.headroom, last * 1.25))
        else:
            choice = int(last * self.growth)
        if task.request > 0 and evidence.maximum <= task.request and last < task.request:
            choice = min(choice, task.request)
        return choice


@dataclass(frozen=True)
class _Fit:
    n: int  # the tasks it was made from
    kind: str  # power | affine | none
    intercept: float
    slope: float
    base: np.ndarray  # sorted errors as factors (power, affine), or the peaks (none)
    peaks: np.ndarray  # the peaks, sorted


class _Arrays:
    """A Known's peaks, their logs and the inputs as float arrays, in completion order, extended
    as tasks complete (converting every list on every decision cost more than the decision),
    and the rightsizer's last fit over them."""

    def __init__(self) -> None:
        self.n = 0
        self.data = np.empty((4, 64))  # peaks, log peaks, inputs, log1p inputs
        self.fit: _Fit | None = None

    def update(self, known: Known) -> np.ndarray:
        n = len(known)
        if n < self.n:  # a Known read back from scratch
            self.n = 0
        if n > self.data.shape[1]:
            grown = np.empty((4, max(n, 2 * self.data.shape[1])))
            grown[:, : self.n] = self.data[:, : self.n]
            self.data = grown
        if n > self.n:
            new = slice(self.n, n)
            self.data[0, new] = known.peaks_in_order[self.n : n]
            self.data[1, new] = np.log(self.data[0, new])
            self.data[2, new] = known.inputs[self.n : n]
            self.data[3, new] = np.log1p(self.data[2, new])
            self.n = n
        return self.data[:, :n]


def _arrays_of(known: Known) -> _Arrays:
    if not isinstance(known.cache, _Arrays):
        known.cache = _Arrays()
    return known.cache


def _arrays(known: Known) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    data = _arrays_of(known).update(known)
    return data[0], data[1], data[2], data[3]


def _mean(values: np.ndarray) -> float:
    """``values.mean()`` without numpy's Python-level wrapper (a decision takes several)."""
    return float(np.add.reduce(values)) / int(values.shape[0])


def _slope(x: np.ndarray, y: np.ndarray) -> float:
    """The least-squares slope of y over x (what ``np.polyfit(x, y, 1)[0]`` gives, cheaper)."""
    dx = x - _mean(x)
    spread = float(dx @ dx)
    return float(dx @ y) / spread if spread > 0 else 0.0


def _power_law(u: np.ndarray, logs: np.ndarray) -> tuple[np.ndarray | None, float, float]:
    """log peak = a + b log(1 + input), b >= 0, given u = log(1 + inputs): (the fitted log
    peaks, a, b)."""
    slope = max(_slope(u, logs), 0.0)  # more input never needs less memory
    intercept = _mean(logs) - slope * _mean(u)
    return intercept + slope * u, intercept, slope


def _affine(inputs: np.ndarray, peaks: np.ndarray) -> tuple[np.ndarray | None, float, float]:
    """peak = a + b × input, b >= 0, a > 0: (the fitted log peaks, a, b)."""
    slope = max(_slope(inputs, peaks), 0.0)
    intercept = _mean(peaks) - slope * _mean(inputs)
    if intercept <= 0:
        return None, 0.0, 0.0
    return np.log(intercept + slope * inputs), intercept, slope


POLICY = RightSizer()
