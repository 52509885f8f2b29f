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

Until ``min_known`` tasks have completed it allocates the maximum seen (or the request). The
settings are the best found on the sizey/ traces (``benchmarks/README.md`` has the table).
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

    def _hypothetical(self, task: Task, known: Known) -> np.ndarray:
        """The peaks this task may have: the tasks seen, each one's error over the model put on
        this task's prediction (sorted). The model is whichever explains the (log) peaks better,
        a power law (log-log line) or an offset plus a slope (a tool with a fixed base, a JVM's
        heap), and only if it explains ``min_r2`` of them; else the peaks as they are."""
        peaks, logs, inputs, u = _arrays(known)
        centred = logs - _mean(logs)
        total = float(centred @ centred)
        x = float(task.input_size)
        best: tuple[float, np.ndarray, float] | None = None  # (r2, fitted at seen, fitted at x)
        if task.input_size > 0 and total > 0 and known.input_max - known.input_min > 0:
            for (fitted, at_x), floor in (
                (_power_law(u, logs, x), self.min_r2),
                (_affine(inputs, peaks, x), self.min_r2_affine),
            ):
                if fitted is None:
                    continue
                error = logs - fitted
                r2 = 1 - float(error @ error) / total
                if r2 >= floor and (best is None or r2 > best[0]):
                    best = (r2, fitted, at_x)
        if best is None:
            return np.sort(peaks)
        _, fitted, at_x = best
        return np.sort(np.exp(at_x + logs - fitted))

    def first(self, task: Task, known: Known) -> int:
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

    def retry(self, task: Task, known: Known, failed: Sequence[int]) -> int:
        """Below the maximum seen: to it (it held every task so far). At or past it: grow."""
        last = failed[-1]
        if len(known) and last < known.maximum:
            ceiling = float(known.maximum)
            if len(known) >= self.min_known and task.input_size > known.input_max:
                ceiling = max(ceiling, float(self._hypothetical(task, known)[-1]))  # a larger input than any seen
            return int(max(ceiling * self.headroom, last * 1.25))
        return int(last * self.growth)


class _Arrays:
    """A Known's peaks, their logs and the inputs as float arrays, in completion order, extended
    as tasks complete (converting every list on every decision cost more than the decision)."""

    def __init__(self) -> None:
        self.n = 0
        self.data = np.empty((4, 64))  # peaks, log peaks, inputs, log1p inputs

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


def _arrays(known: Known) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    if not isinstance(known.cache, _Arrays):
        known.cache = _Arrays()
    data = known.cache.update(known)
    return data[0], data[1], data[2], data[3]


def _mean(values: np.ndarray) -> float:
    """``values.mean()`` without numpy's Python-level wrapper (a decision takes several)."""
    return float(np.add.reduce(values)) / int(values.shape[0])


def _slope(x: np.ndarray, y: np.ndarray) -> float:
    """The least-squares slope of y over x (what ``np.polyfit(x, y, 1)[0]`` gives, cheaper)."""
    dx = x - _mean(x)
    spread = float(dx @ dx)
    return float(dx @ y) / spread if spread > 0 else 0.0


def _power_law(u: np.ndarray, logs: np.ndarray, x: float) -> tuple[np.ndarray | None, float]:
    """log peak = a + b log(1 + input), b >= 0, given u = log(1 + inputs): (the fitted log
    peaks, the log prediction at x)."""
    slope = max(_slope(u, logs), 0.0)  # more input never needs less memory
    intercept = _mean(logs) - slope * _mean(u)
    return intercept + slope * u, intercept + slope * float(np.log1p(x))


def _affine(inputs: np.ndarray, peaks: np.ndarray, x: float) -> tuple[np.ndarray | None, float]:
    """peak = a + b × input, b >= 0, a > 0: (the fitted log peaks, the log prediction at x)."""
    slope = max(_slope(inputs, peaks), 0.0)
    intercept = _mean(peaks) - slope * _mean(inputs)
    if intercept <= 0:
        return None, 0.0
    return np.log(intercept + slope * inputs), float(np.log(intercept + slope * x))


POLICY = RightSizer()
