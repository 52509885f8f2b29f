"""``envplane observe replay`` on trace files it has never seen: the table, the targets, the
allocations file anyone can score, and clear errors."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

from tests.support.daemons import ThreadDaemon
from tests.test_cli import envplane

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


def test_the_daemon_commands_end_to_end(daemon: ThreadDaemon, wf: str, tmp_path: Path) -> None:
    """import (folders, twice: stored once), stats, recommend, export, report, send, wrap."""
    nested = tmp_path / "runs" / "a"
    nested.mkdir(parents=True)
    write_trace(nested / "trace_tiny.txt")
    (tmp_path / "runs" / "README.md").write_text("not a trace")
    first = envplane(daemon, "observe", "import", str(tmp_path / "runs"), "--pipeline", wf, "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["stored"] == 80
    again = json.loads(envplane(daemon, "observe", "import", str(tmp_path / "runs"), "-P", wf, "--json").stdout)
    assert (again["stored"], again["duplicates"]) == (0, 80)

    stats = json.loads(envplane(daemon, "observe", "stats", "-P", wf, "--json").stdout)
    assert {s["process"]: s["completed"] for s in stats} == {"ALIGN": "40", "SORT": "40"}
    config = envplane(daemon, "observe", "export", "-P", wf, "--max-memory", "32GB").stdout
    assert "withName: 'ALIGN'" in config and "resourceLimits = [ memory: 32768.MB ]" in config
    assert "SORT" in envplane(daemon, "observe", "recommend", "-P", wf).stdout
    report = tmp_path / "report.html"
    assert envplane(daemon, "observe", "report", "-P", wf, "-o", str(report)).returncode == 0
    assert "<svg" in report.read_text()

    sent = envplane(daemon, "observe", "send", "-P", wf, "--process", "ALIGN", "--status", "FAILED", "--exit", "137",
                    "--memory", "4GB", "--peak-rss", "3.9GB")  # fmt: skip
    assert sent.stdout.startswith("RETRY_WITH_RESOURCES memory "), sent.stdout + sent.stderr
    bad = envplane(daemon, "observe", "send", "--process", "X", "--peak-rss", "lots")
    assert bad.returncode != 0 and "--peak-rss 'lots' is not a size" in bad.stderr

    allocate = "x = bytearray(150 * 2**20); import time; time.sleep(0.3)"
    wrapped = envplane(daemon, "observe", "wrap", "-P", wf, "--process", "ALLOC", "--", sys.executable, "-c", allocate)
    assert wrapped.returncode == 0, wrapped.stderr
    assert "-> RIGHT_SIZE" in wrapped.stderr
    [measured] = json.loads(envplane(daemon, "observe", "stats", "-P", wf, "--process", "ALLOC", "--json").stdout)
    assert int(measured["peak_rss_max_bytes"]) >= 150 * 2**20
    failing = envplane(daemon, "observe", "wrap", "-P", wf, "--", sys.executable, "-c", "raise SystemExit(3)")
    assert failing.returncode == 3 and "-> FAIL" in failing.stderr
    unreachable = envplane(None, "observe", "wrap", "--", sys.executable, "-c", "pass", addr="127.0.0.1:1")
    assert unreachable.returncode == 0 and "the observation was not sent" in unreachable.stderr
    forgot = envplane(daemon, "observe", "forget", wf, "--process", "ALLOC", "--yes")
    assert forgot.returncode == 0 and "forgot 1 observation(s) of 1 process(es)" in forgot.stdout
    missing = envplane(daemon, "observe", "wrap", "--", "no-such-command-here")
    assert missing.returncode == 127 and "cannot run 'no-such-command-here'" in missing.stderr
