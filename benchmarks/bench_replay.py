"""Memory policies replayed on real Nextflow traces, side by side (issue 12's evaluation).

    make bench-replay      # or: .venv/bin/python benchmarks/bench_replay.py [TRACE_DIR]

Each trace file is a workflow. Every policy is replayed under the same protocol
(``envplane/observations/service/replay.py``: Sizey's, online only) and scored in GB·h of memory
wasted, failed attempts and MAQ. Printed per workflow: each baseline, envplane's rightsizer, the
best baseline (least waste), and the issue's targets: the rightsizer wastes >= 30 % less than
that baseline with no more failures, and the overall MAQ is >= 90 %.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from envplane.observations.service import baselines, policies, replay, traces

DATA = traces.shipped()


def row(workflow: str, policy: str, score: replay.Score) -> str:
    return f"{workflow:18} {policy:12} {score.tasks:6d} {score.waste:11.1f} {score.failures:6d} {score.maq:7.1%}"


def table(paths: list[Path]) -> None:
    ours = policies.POLICY
    everyone = [*baselines.BASELINES, ours]
    totals = {p.name: replay.Score() for p in everyone}
    header = f"{'workflow':18} {'policy':12} {'tasks':>6} {'waste GB·h':>11} {'fails':>6} {'MAQ':>7}"
    print(header)
    print("-" * len(header))
    started = time.perf_counter()
    replayed = 0
    for path in paths:
        tasks = traces.read(path)
        results = {p.name: replay.replay(path.name, tasks, p) for p in everyone}
        replayed += sum(r.total.tasks for r in results.values())
        name = traces.workflow_name(path)
        for policy in everyone:
            score = results[policy.name].total
            totals[policy.name].add(score)
            print(
                f"{name:18} {policy.name:12} {score.tasks:6d} {score.waste:11.1f} {score.failures:6d} {score.maq:7.1%}"
            )
        best = min((results[b.name].total for b in baselines.BASELINES), key=lambda s: s.waste)
        best_name = next(b.name for b in baselines.BASELINES if results[b.name].total is best)
        mine = results[ours.name].total
        change = mine.waste / best.waste - 1 if best.waste else 0.0
        verdict = "met" if change <= -0.30 and mine.failures <= best.failures else "NOT met"
        print(
            f"{'':18} -> best baseline {best_name}: waste {change:+.1%} vs it (target <= -30 %, i.e. "
            f"<= {best.waste * 0.7:.1f} GB·h), failures {mine.failures} vs {best.failures}: {verdict}"
        )
        print()
    for policy in everyone:
        score = totals[policy.name]
        print(row("ALL", policy.name, score))
    print(f"overall MAQ of {ours.name}: {totals[ours.name].maq:.1%} (target >= 90 %)")
    seconds = time.perf_counter() - started
    print(f"replay speed: {replayed / seconds:,.0f} tasks/s ({replayed} task replays in {seconds:.1f} s)")


def main() -> None:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else DATA
    if not root.exists():
        sys.exit(f"no traces at {root}: pass a folder of Nextflow trace files")
    sizey = sorted((root / "sizey").glob("*.csv.gz")) if (root / "sizey").is_dir() else sorted(root.glob("*"))
    print("== sizey/ (the six workflows of the targets) ==")
    table(sizey)
    for other in ("k-segments/tasks_summary.csv.gz", "cws-memory-predictors/taskscaler_observations.csv.gz"):
        if (root / other).exists():
            print(f"\n== {other} (reported, not targets) ==")
            table([root / other])


if __name__ == "__main__":
    main()
