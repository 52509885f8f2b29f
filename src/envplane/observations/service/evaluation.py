"""The evaluation table: policies replayed on trace files, side by side, with the issue's
targets checked per workflow (what ``envplane observe replay`` and ``make bench-replay`` print).

Targets: envplane's policy wastes at least 30 % less memory than the best baseline of the
workflow (the one that wastes least) with no more failures than it; overall MAQ >= 90 %.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from envplane.errors import InvalidArgument
from envplane.observations.service import baselines, policies, replay, traces

WASTE_CUT = 0.30
MAQ_TARGET = 0.90


# The policies by name, built once: they keep no state of their own (a Known holds a policy's
# incremental state), and the daemon looks a pipeline's policy up for every decision.
POLICIES: dict[str, replay.Policy] = {p.name: p for p in (*baselines.BASELINES, policies.RightSizer())}


def policy_named(name: str) -> replay.Policy:
    try:
        return POLICIES[name]
    except KeyError:
        raise InvalidArgument(f"no policy named {name!r} (policies: {', '.join(POLICIES)})") from None


@dataclass
class Verdict:
    best: str
    best_score: replay.Score
    change: float  # of the policy's waste vs the best baseline's (-0.3 = 30 % less)
    met: bool


@dataclass
class Row:
    workflow: str
    scores: dict[str, replay.Score]
    verdict: Verdict | None


@dataclass
class Table:
    policy: str
    rows: list[Row] = field(default_factory=list)
    totals: dict[str, replay.Score] = field(default_factory=dict)
    replayed: int = 0

    @property
    def maq_met(self) -> bool:
        return self.totals[self.policy].maq >= MAQ_TARGET


def evaluate(
    paths: Sequence[Path],
    policy: replay.Policy,
    compared: Sequence[replay.Policy] = baselines.BASELINES,
    *,
    history: float = replay.HISTORY,
    allocations: IO[str] | None = None,
) -> Table:
    """Every trace in ``paths`` (one workflow each) through ``policy`` and ``compared``."""
    everyone = [*compared, policy]
    table = Table(policy.name, totals={p.name: replay.Score() for p in everyone})
    for path in paths:
        tasks = traces.read(path)
        name = traces.workflow_name(path)
        scores = {}
        for p in everyone:
            out = allocations if p is policy else None
            scores[p.name] = replay.replay(name, tasks, p, allocations=out, history=history).total
            table.totals[p.name].add(scores[p.name])
            table.replayed += scores[p.name].tasks
        verdict = None
        if compared:
            best = min(compared, key=lambda b: scores[b.name].waste)
            best_score, mine = scores[best.name], scores[policy.name]
            change = mine.waste / best_score.waste - 1 if best_score.waste else 0.0
            met = change <= -WASTE_CUT and mine.failures <= best_score.failures
            verdict = Verdict(best.name, best_score, change, met)
        table.rows.append(Row(name, scores, verdict))
    return table


def render(table: Table) -> str:
    """The table as text (fixed columns, one line per workflow and policy)."""

    def line(workflow: str, name: str, score: replay.Score) -> str:
        return f"{workflow:24} {name:12} {score.tasks:6d} {score.waste:11.1f} {score.failures:6d} {score.maq:7.1%}"

    header = f"{'workflow':24} {'policy':12} {'tasks':>6} {'waste GB·h':>11} {'fails':>6} {'MAQ':>7}"
    out = [header, "-" * len(header)]
    for row in table.rows:
        out += [line(row.workflow, name, score) for name, score in row.scores.items()]
        if row.verdict is not None:
            v = row.verdict
            out.append(
                f"{'':24} -> best baseline {v.best}: waste {v.change:+.1%} (target <= -30 %: "
                f"<= {v.best_score.waste * (1 - WASTE_CUT):.1f} GB·h), failures "
                f"{row.scores[table.policy].failures} vs {v.best_score.failures}: {'met' if v.met else 'NOT met'}"
            )
        out.append("")
    out += [line("ALL", name, score) for name, score in table.totals.items()]
    mine = table.totals[table.policy]
    met = sum(1 for r in table.rows if r.verdict is not None and r.verdict.met)
    judged = sum(1 for r in table.rows if r.verdict is not None)
    out.append(
        f"overall MAQ of {table.policy}: {mine.maq:.1%} (target >= 90 %: {'met' if table.maq_met else 'NOT met'})"
    )
    if judged:
        out.append(f"per-workflow targets met: {met} of {judged}")
    return "\n".join(out)


def recorded(tasks: Sequence[traces.Task]) -> dict[str, replay.Score]:
    """What the allocations *recorded* in a trace did, by run group (for the CWS file: workflow
    and predictor): failed attempts waste their whole request × runtime; successful ones
    (request − peak) × runtime; attempts too short to have a measured peak are left out."""
    groups: dict[str, replay.Score] = {}
    for task in tasks:
        parts = task.run.split("/")
        key = f"{parts[0]}/{parts[2]}" if len(parts) >= 3 else (task.run or task.workflow)
        score = groups.setdefault(key, replay.Score())
        if task.status == "COMPLETED" and task.peak_rss <= 0:
            continue
        score.attempts += 1
        if task.status != "COMPLETED":
            score.failures += 1
            score.waste += task.request * task.realtime / replay.GBH
            continue
        score.tasks += 1
        score.usage += task.peak_rss * task.realtime / replay.GBH
        score.waste += max(task.request - task.peak_rss, 0) * task.realtime / replay.GBH
    return dict(sorted(groups.items()))


def render_recorded(groups: dict[str, replay.Score]) -> str:
    header = f"{'run group':34} {'attempts':>9} {'failed':>7} {'waste GB·h':>11} {'MAQ':>7}"
    lines = [header, "-" * len(header)]
    for key, s in groups.items():
        lines.append(f"{key:34} {s.attempts:9d} {s.failures:7d} {s.waste:11.2f} {s.maq:7.1%}")
    return "\n".join(lines)
