"""Reading traces as Nextflow writes them: human units, raw, CSV (gzip or not), and a clear
error for a file that is not a trace."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from envplane.errors import InvalidArgument
from envplane.observations.service import traces

HUMAN = (
    "task_id\thash\tnative_id\tname\tstatus\texit\tsubmit\tduration\trealtime\t%cpu\tpeak_rss\tpeak_vmem\trchar\twchar"
    "\tprocess\tmemory\tattempt\n"
    "1\tab/123456\t4242\tALIGN (s1)\tCOMPLETED\t0\t2024-06-25 10:31:05.485\t3m 4s\t2m 50s\t95.3%\t1.2 GB\t2 GB"
    "\t512 MB\t10 MB\tALIGN\t4 GB\t1\n"
    "2\tcd/654321\t4243\tALIGN (s2)\tFAILED\t137\t2024-06-25 10:31:06.000\t1h 2m 3s\t500ms\t-\t-\t-\t-\t-"
    "\tALIGN\t4 GB\t2\n"
)


def test_a_trace_with_human_units(tmp_path: Path) -> None:
    path = tmp_path / "trace.txt"
    path.write_text(HUMAN)
    first, second = traces.read(path)
    assert first.peak_rss == int(1.2 * 2**30) and first.request == 4 * 2**30 and first.input_size == 512 * 2**20
    assert first.realtime == 170_000 and first.status == "COMPLETED" and first.exit == 0
    assert first.submit == pytest.approx(1719311465485.0)  # read as UTC
    assert second.peak_rss == 0 and second.exit == 137 and second.attempt == 2 and second.realtime == 500
    assert first.workflow == "trace" and first.process == "ALIGN"


def test_raw_and_csv_and_gzip(tmp_path: Path) -> None:
    raw = (
        "task_id,process,status,exit,memory,peak_rss,realtime,submit,complete,rchar\n"
        "7,P,COMPLETED,0,1000,900,60000,5,9,42\n"
    )
    (tmp_path / "trace_wf.csv").write_text(raw)
    (tmp_path / "trace_wf2.csv.gz").write_bytes(gzip.compress(raw.encode()))
    for name, workflow in (("trace_wf.csv", "trace_wf"), ("trace_wf2.csv.gz", "trace_wf2")):
        (task,) = traces.read(tmp_path / name)
        assert (task.workflow, task.request, task.peak_rss, task.realtime, task.input_size) == (
            workflow,
            1000,
            900,
            60000,
            42,
        )


def test_units_and_bad_input() -> None:
    assert traces.memory("1 KB") == 1024 and traces.memory("2.5 MB") == int(2.5 * 2**20) and traces.memory("-") == 0
    assert traces.duration("1h 2m 3s") == 3_723_000 and traces.duration("1d") == 86_400_000
    with pytest.raises(ValueError, match="not a duration"):
        traces.duration("soon")
    with pytest.raises(ValueError, match="not a memory size"):
        traces.memory("lots")


def test_a_file_that_is_not_a_trace_says_what_it_lacks(tmp_path: Path) -> None:
    path = tmp_path / "notes.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(
        InvalidArgument, match=r"not a Nextflow trace: it needs the columns process, memory and peak_rss"
    ):
        traces.read(path)
    bad = tmp_path / "bad.tsv"
    bad.write_text(HUMAN.replace("1.2 GB", "a lot"))
    with pytest.raises(InvalidArgument, match=r"line 2: not a memory size: 'a lot'"):
        traces.read(bad)
    with pytest.raises(InvalidArgument, match="cannot read trace"):
        traces.read(tmp_path / "missing.txt")
