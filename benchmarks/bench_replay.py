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
    for other in ("k-segments/tasks_summary.csv.gz", "cws-memory-predictors/taskscaler_observations.csv.gz"):
        if (root / other).exists():
            print(f"\n== {other} (reported, not targets) ==")
            table([root / other])


if __name__ == "__main__":
    main()
