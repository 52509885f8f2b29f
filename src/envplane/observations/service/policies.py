"""envplane's memory policies for the replay and the daemon (``replay.Policy``).

**rightsizer** (the default): per process, online.

1. The peak is modelled from the input size, in log-log (``log peak = a + b log input``), fitted
   by least squares on the tasks completed so far; with no useful input size the slope is 0
   and the model is the peaks' own distribution.
2. The residuals of the tasks seen, put on this task's prediction, are the peaks it may have.
3. The first allocation is the one of those that minimizes the expected cost of this task:
   ``allocation - peak`` where it fits, ``allocation + (retry - peak) + penalty`` where it
   fails (the failed attempt is wasted whole, the retry over-allocates, and a failure costs
   ``penalty`` × the retry besides: the knob between waste and failures).
4. A retry below the maximum seen goes to it (with ``headroom``); at or past it, the failed
   allocation grows by ``growth``.

Where the choice is the maximum seen, it is given the room of the last step a new maximum took
(at most ``record_cap``): the next task may be a new record, and a failure costs a whole
allocation where a few percent more costs a few percent. Until ``min_known`` tasks have
completed it allocates the maximum seen (or the request).
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
    record_cap: float = 0.1  # at most this margin over the maximum seen (see first())

    def _hypothetical(self, task: Task, known: Known) -> np.ndarray:
        peaks = np.log(np.asarray(known.peaks_in_order, dtype=float))
        inputs = np.log1p(np.asarray(known.inputs, dtype=float))
        x = np.log1p(float(task.input_size))
        spread = inputs.std()
        slope, intercept = 0.0, float(peaks.mean())
        if spread > 1e-9 and task.input_size > 0:
            fitted_slope, _ = np.polyfit(inputs, peaks, 1)
            fitted_slope = max(float(fitted_slope), 0.0)  # more input never needs less memory
            fitted_intercept = float(peaks.mean() - fitted_slope * inputs.mean())
            residual = peaks - (fitted_intercept + fitted_slope * inputs)
            total = float(((peaks - peaks.mean()) ** 2).sum())
            if total > 0 and 1 - float((residual**2).sum()) / total >= self.min_r2:
                slope, intercept = fitted_slope, fitted_intercept
        residuals = peaks - (intercept + slope * inputs)
        return np.sort(np.exp(intercept + slope * x + residuals))

    def first(self, task: Task, known: Known) -> int:
        if len(known) < self.min_known:
            return known.maximum if len(known) else task.request
        h = self._hypothetical(task, known)
        n = len(h)
        retry = max(h[-1], known.maximum) * self.headroom
        k = np.arange(n)
        cost = h * n + (retry + self.penalty * retry) * (n - 1 - k) - h.sum()
        choice = float(h[int(np.argmin(cost))])
        if task.input_size <= max(known.inputs):  # within what was seen: never above the maximum seen
            choice = min(choice, float(known.maximum))
        if choice == known.maximum and len(known.peaks) >= 2:
            # Choosing the maximum says the next task may be a new record: leave it room of the
            # last step a record took (the maximum over the peak below it), up to record_cap. A
            # failure costs a whole allocation; a few percent more costs a few percent.
            step = known.maximum / max(known.peaks[-2], 1) - 1
            choice = known.maximum * (1 + min(max(step, 0.0), self.record_cap))
        return int(choice)

    def retry(self, task: Task, known: Known, failed: Sequence[int]) -> int:
        """Below the maximum seen: to it (it held every task so far). At or past it: grow."""
        last = failed[-1]
        if len(known) and last < known.maximum:
            ceiling = float(known.maximum)
            if len(known) >= self.min_known and task.input_size > max(known.inputs):
                ceiling = max(ceiling, float(self._hypothetical(task, known)[-1]))  # a larger input than any seen
            return int(max(ceiling * self.headroom, last * 1.25))
        return int(last * self.growth)


POLICY = RightSizer()
