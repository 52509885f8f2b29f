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

from envplane.observations.service import evaluation, policies, traces

DATA = traces.shipped()


def table(paths: list[Path]) -> None:
    started = time.perf_counter()
    result = evaluation.evaluate(paths, policies.RightSizer())
    seconds = time.perf_counter() - started
    print(evaluation.render(result))
    print(f"replay speed: {result.replayed / seconds:,.0f} tasks/s ({result.replayed} task replays in {seconds:.1f} s)")


def main() -> None:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else DATA
    if not root.exists():
        sys.exit(f"no traces at {root}: pass a folder of Nextflow trace files")
    sizey = sorted((root / "sizey").glob("*.csv.gz")) if (root / "sizey").is_dir() else sorted(root.glob("*"))
    print("== sizey/ (the six workflows of the targets) ==")
    table(sizey)
    ksegments = root / "k-segments" / "tasks_summary.csv.gz"
    if ksegments.exists():
        print("\n== k-segments/ task summaries, eager and sarek in one file (reported, not targets) ==")
        table([ksegments])
    cws = root / "cws-memory-predictors" / "taskscaler_observations.csv.gz"
    if cws.exists():
        print("\n== cws-memory-predictors/: what each predictor's recorded allocations did, 11 runs each ==")
        print("   (test-profile inputs: tiny tasks, so MAQ is low for all; a replay would pool 140 runs)")
        print(evaluation.render_recorded(evaluation.recorded(traces.read(cws))))


if __name__ == "__main__":
    main()
