"""``envplane observe replay`` on trace files it has never seen: the table, the targets, the
allocations file anyone can score, and clear errors."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

GIB = 2**30


def write_trace(path: Path) -> None:
    """A raw Nextflow trace: 2 processes × 40 tasks whose peak follows their input."""
    rng = random.Random(7)
    lines = ["task_id\tprocess\tstatus\texit\tmemory\tpeak_rss\trealtime\tsubmit\tcomplete\trchar"]
    for i in range(80):
        process = "ALIGN" if i % 2 else "SORT"
        size = rng.randint(1, 8) * GIB
        peak = int(0.5 * GIB + size * (0.9 if process == "ALIGN" else 0.2))
        realtime = rng.randint(60, 600) * 1000
        fields = [i, process, "COMPLETED", 0, 16 * GIB, peak, realtime, i * 1000, i * 1000 + 500, size]
        lines.append("\t".join(map(str, fields)))
    path.write_text("\n".join(lines) + "\n")


def test_replay_prints_the_table_and_writes_the_allocations(tmp_path: Path) -> None:
    trace = tmp_path / "trace_tiny.txt"
    write_trace(trace)
    allocations = tmp_path / "allocations.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "envplane", "observe", "replay", str(trace), "--allocations", str(allocations)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for name in ("presets", "seqera-max", "witt-p95", "tovar", "rightsizer"):
        assert f"trace_tiny               {name}" in done.stdout
    assert "overall MAQ of rightsizer" in done.stdout and "per-workflow targets met" in done.stdout
    lines = [json.loads(line) for line in allocations.read_text().splitlines()]
    assert {line["workflow"] for line in lines} == {"trace_tiny"} and all(line["run"] == "" for line in lines)
    firsts = [line for line in lines if line["attempt"] == 1]
    assert len(firsts) == 2 * 28  # 70 % of each process's 40 tasks, online
    assert all(line["allocation_bytes"] > 0 for line in lines)


def test_replay_errors_are_clear(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "envplane", "observe", "replay", *args], capture_output=True, text=True
        )

    trace = tmp_path / "t.txt"
    write_trace(trace)
    assert "no policy named 'nope'" in run(str(trace), "--policy", "nope").stderr
    assert "cannot read trace" in run(str(tmp_path / "missing.txt")).stderr
    bad = run(str(trace), "--split", "1.5")
    assert bad.returncode == 2 and "the history split must be in [0, 1)" in bad.stderr
