"""Nextflow task traces as Nextflow writes them, read into :class:`Task` records.

Accepted, told apart by their content (not their name):

* the trace file (``-with-trace``): tab-separated, human units (``1.2 GB``, ``3m 4s``,
  ``95.3%``, ``-`` for none), or raw (``trace.raw = true``: bytes and milliseconds);
* the CSV exports of the same fields (``sizey/``), gzip-compressed or not;
* the other layouts shipped in ``shared/data/nextflow-traces``: ``k-segments`` task summaries
  (``max_mem_bytes``, ``peak_mem_mb``, ``files_input_total_size_bytes``), the CWS TaskScaler
  observations (``ramRequest``, ``peakRss``, ``inputSize``, several runs in one file) and the
  Lotaru execution reports (``Task``, ``memory``, ``peak_rss``, ``TaskInputSize``).

Memory units are Nextflow's (``KB`` = 1024 bytes), times become milliseconds.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from envplane.errors import InvalidArgument

_MEMORY = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGTP]?B)?\s*$", re.IGNORECASE)
_MEMORY_UNITS = {"B": 1, "KB": 2**10, "MB": 2**20, "GB": 2**30, "TB": 2**40, "PB": 2**50}
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


@dataclass(frozen=True)
class Task:
    """One attempt of one task, as the trace recorded it."""

    workflow: str  # the trace file's name without its extensions
    run: str  # the trace's run column, when it has one ("" otherwise)
    task_id: str
    process: str
    attempt: int
    status: str  # COMPLETED | FAILED | ...
    exit: int | None
    request: int  # requested memory, bytes (0: none recorded)
    peak_rss: int  # bytes (0: not measured)
    realtime: float  # ms
    submit: float  # epoch ms
    complete: float  # epoch ms
    input_size: int  # rchar / input bytes (0: unknown)
    cpus: int = 1


SHIPPED_VARIABLE = "ENVPLANE_TRACES_DIR"


def shipped() -> Path:
    """Where the real traces this project is judged on live: ``ENVPLANE_TRACES_DIR``, else
    ``shared/data/nextflow-traces`` beside the checkout (or, from an installed package, the
    first such folder above the working directory)."""
    import os

    if os.environ.get(SHIPPED_VARIABLE):
        return Path(os.environ[SHIPPED_VARIABLE])
    here = Path(__file__).resolve()
    for base in (*here.parents, *Path.cwd().resolve().parents, Path("/work")):
        candidate = base / "shared" / "data" / "nextflow-traces"
        if candidate.is_dir():
            return candidate
    return Path("shared/data/nextflow-traces")


def memory(text: str) -> int:
    """``"1.2 GB"`` / ``"123"`` (bytes) / ``"-"`` -> bytes (0 for none)."""
    text = text.strip()
    if text in ("", "-"):
        return 0
    match = _MEMORY.match(text)
    if not match:
        raise ValueError(f"not a memory size: {text!r}")
    return int(float(match.group(1)) * _MEMORY_UNITS[(match.group(2) or "B").upper()])


def duration(text: str) -> float:
    """``"3m 4s"`` / ``"500ms"`` / ``"1234"`` (ms) / ``"-"`` -> milliseconds."""
    text = text.strip()
    if text in ("", "-"):
        return 0.0
    try:
        return float(text)
    except ValueError:
        pass
    parts = _DURATION_PART.findall(text)
    if not parts or _DURATION_PART.sub("", text).strip():
        raise ValueError(f"not a duration: {text!r}")
    return sum(float(n) * _DURATION_UNITS[u] for n, u in parts)


def timestamp(text: str) -> float:
    """Epoch ms, or Nextflow's ``2023-03-13 10:31:05.485`` (read as UTC)."""
    text = text.strip()
    if text in ("", "-"):
        return math.nan
    try:
        return float(text)
    except ValueError:
        import datetime

        moment = datetime.datetime.fromisoformat(text).replace(tzinfo=datetime.UTC)
        return moment.timestamp() * 1000


def _integer(text: str) -> int | None:
    text = text.strip()
    if text in ("", "-"):
        return None
    return int(float(text))


def _open(path: Path) -> io.TextIOBase:
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return io.StringIO(data.decode("utf-8", errors="replace"))


def workflow_name(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".csv", ".tsv", ".txt"):
        name = name.removesuffix(suffix)
    return name  # (the allocations file names a workflow so: the file name without extensions)


def read(path: Path) -> list[Task]:
    """Every task attempt in the file at ``path`` (any layout above)."""
    try:
        handle = _open(path)
    except OSError as exc:
        raise InvalidArgument(f"cannot read trace {path}: {exc.strerror or exc}") from None
    head = handle.readline()
    handle.seek(0)
    delimiter = "\t" if head.count("\t") > head.count(",") else ","
    rows = csv.DictReader(handle, delimiter=delimiter)
    fields = set(rows.fieldnames or ())
    name = workflow_name(path)
    try:
        if {"process", "peak_rss", "memory"} <= fields:
            return list(_nextflow(rows, name))
        if {"ramRequest", "peakRss", "taskName"} <= fields:
            return list(_taskscaler(rows, name))
        if {"max_mem_bytes", "peak_mem_mb"} <= fields:
            return list(_ksegments(rows, name))
        if {"Task", "peak_rss", "memory"} <= fields:
            return list(_lotaru(rows, name))
    except (ValueError, KeyError) as exc:
        raise InvalidArgument(f"trace {path}: line {rows.line_num}: {exc}") from None
    raise InvalidArgument(
        f"{path} is not a Nextflow trace: it needs the columns process, memory and peak_rss "
        f"(found: {', '.join(sorted(fields)[:12])})"
    )


def _nextflow(rows: csv.DictReader[str], name: str) -> Iterator[Task]:
    for index, row in enumerate(rows):
        submit = timestamp(row.get("submit", ""))
        complete = timestamp(row.get("complete", ""))
        realtime = duration(row.get("realtime", "") or row.get("duration", ""))
        yield Task(
            workflow=name,
            run=row.get("run", "") or "",
            task_id=row.get("task_id") or str(index),
            process=row["process"],
            attempt=_integer(row.get("attempt", "")) or 1,
            status=(row.get("status") or "COMPLETED").upper(),
            exit=_integer(row.get("exit", "")),
            request=memory(row.get("memory", "")),
            peak_rss=memory(row.get("peak_rss", "")),
            realtime=realtime,
            submit=submit if not math.isnan(submit) else float(index),
            complete=complete if not math.isnan(complete) else (submit + realtime if not math.isnan(submit) else index),
            input_size=memory(row.get("rchar", "") or row.get("read_bytes", "") or "0"),
            cpus=_integer(row.get("cpus", "")) or 1,
        )


def _taskscaler(rows: csv.DictReader[str], name: str) -> Iterator[Task]:
    for index, row in enumerate(rows):
        ok = row["success"].strip().lower() == "true"
        realtime = duration(row.get("realtime", ""))
        yield Task(
            workflow=name,
            run="/".join(row.get(k, "") for k in ("workflow", "campaign", "predictor", "run")),
            task_id=row["taskName"],
            process=row["task"],
            attempt=_integer(row.get("attempt_derived", "")) or 1,
            status="COMPLETED" if ok else "FAILED",
            exit=_integer(row.get("exit_from_log", "")) if not ok else 0,
            request=memory(row["ramRequest"]),
            peak_rss=memory(row["peakRss"]),
            realtime=realtime,
            submit=float(index),
            complete=float(index) + 0.5,
            input_size=memory(row.get("inputSize", "") or "0"),
        )


def _ksegments(rows: csv.DictReader[str], name: str) -> Iterator[Task]:
    for index, row in enumerate(rows):
        peak_mb = row.get("peak_mem_mb", "").strip()
        yield Task(
            workflow=row.get("workflow") or name,
            run="",
            task_id=row.get("task_uid") or str(index),
            process=row["process"],
            attempt=1,
            status="COMPLETED",
            exit=0,
            request=memory(row["max_mem_bytes"]),
            peak_rss=int(float(peak_mb) * 2**20) if peak_mb else 0,
            realtime=float(row.get("sampled_duration_s") or 0) * 1000,
            submit=float(index),
            complete=float(index) + 0.5,
            input_size=memory(row.get("files_input_total_size_bytes", "") or "0"),
        )


def _lotaru(rows: csv.DictReader[str], name: str) -> Iterator[Task]:
    for index, row in enumerate(rows):
        yield Task(
            workflow=f"{row.get('Workflow', name)}",
            run=f"{row.get('Machine', '')}/{row.get('Label', '')}",
            task_id=str(index),
            process=row["Task"],
            attempt=1,
            status="COMPLETED",
            exit=0,
            request=memory(row["memory"]),
            peak_rss=memory(row["peak_rss"]),
            realtime=duration(row.get("Realtime", "")),
            submit=float(index),
            complete=float(index) + 0.5,
            input_size=memory(row.get("TaskInputSize", "") or row.get("rchar", "") or "0"),
        )
