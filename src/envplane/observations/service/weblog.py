"""Nextflow's ``-with-weblog`` events, exactly as Nextflow posts them, as observations.

Nextflow posts one JSON object per event: ``{"runName", "runId", "event", "utcTime",
"trace": {...}}`` for ``process_submitted`` / ``process_started`` / ``process_completed``, and
``{"runName", "runId", "event", "utcTime", "metadata": {...}}`` for ``started``, ``error`` and
``completed``. A task's ``trace`` carries the trace fields in raw units (bytes, milliseconds,
epoch milliseconds; ``%cpu`` as a number); a task that failed comes as ``process_completed``
with ``status: FAILED``. Only the completed (or failed) tasks are observations; the other
events are acknowledged. The pipeline is the project name of the run's ``started`` event
(``metadata.workflow.projectName``, e.g. ``nf-core/rnaseq``), else the ``pipeline`` the URL
names, else the run name.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from envplane.errors import InvalidArgument
from envplane.observations.service import traces
from envplane.observations.service.decisions import Observation

EVENTS = ("started", "process_submitted", "process_started", "process_completed", "error", "completed")
NO_EXIT = 2**31 - 1  # Nextflow's Integer.MAX_VALUE: no exit status
RUNS = 10_000  # runs whose project name is remembered


@dataclass(frozen=True)
class Parsed:
    event: str
    run: str
    observation: Observation | None  # None: an event that is not a task's end


class Runs:
    """runId -> the pipeline its ``started`` event named (bounded)."""

    def __init__(self) -> None:
        self._names: OrderedDict[str, str] = OrderedDict()

    def name(self, run_id: str, metadata: Mapping[str, Any]) -> None:
        workflow = metadata.get("workflow") if isinstance(metadata, Mapping) else None
        if not isinstance(workflow, Mapping):
            return
        manifest = workflow.get("manifest") if isinstance(workflow.get("manifest"), Mapping) else {}
        name = workflow.get("projectName") or (manifest or {}).get("name")
        if isinstance(name, str) and name:
            self._names[run_id] = name[:128]
            while len(self._names) > RUNS:
                self._names.popitem(last=False)

    def of(self, run_id: str) -> str:
        return self._names.get(run_id, "")


def _number(trace: Mapping[str, Any], key: str, parse: Any = float) -> float:
    value = trace.get(key)
    if value is None or value == "" or value == "-":
        return 0.0
    if isinstance(value, bool):
        raise InvalidArgument(f"trace.{key} must be a number, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            number = float(parse(value.rstrip("%")))
        except ValueError:
            raise InvalidArgument(f"trace.{key} is not a number: {value!r}") from None
        return 0.0 if math.isnan(number) else number
    raise InvalidArgument(f"trace.{key} must be a number, got {type(value).__name__}")


def parse(body: Any, runs: Runs, pipeline: str = "") -> Parsed:
    if not isinstance(body, Mapping):
        raise InvalidArgument("a weblog event is a JSON object with runName, runId, event, utcTime")
    event, run_id, run_name = body.get("event"), body.get("runId") or "", body.get("runName") or ""
    if not isinstance(event, str) or event not in EVENTS:
        raise InvalidArgument(f"event {event!r} is not a Nextflow weblog event ({', '.join(EVENTS)})")
    if not isinstance(run_id, str) or not isinstance(run_name, str):
        raise InvalidArgument("runId and runName are strings")
    if event == "started":
        runs.name(run_id, body.get("metadata") or {})
    trace = body.get("trace")
    if event != "process_completed":
        return Parsed(event, run_name, None)
    if not isinstance(trace, Mapping):
        raise InvalidArgument("a process_completed event carries its task's trace (an object)")
    status = str(trace.get("status") or "COMPLETED").upper()
    exit_code = int(_number(trace, "exit"))
    if exit_code == NO_EXIT:
        exit_code = 0 if status == "COMPLETED" else -1
    process = trace.get("process") or ""
    if not isinstance(process, str):
        raise InvalidArgument("trace.process must be a string")
    submit, complete = _number(trace, "submit", traces.timestamp), _number(trace, "complete", traces.timestamp)
    observation = Observation(
        event_id=f"weblog:{run_id}:{trace.get('task_id', '')}:{trace.get('attempt', 1)}:{status}" if run_id else "",
        event_type=event,
        pipeline=pipeline or runs.of(run_id) or run_name or "default",
        process=process,
        task_id=str(trace.get("task_id", "")),
        status=status,
        exit_code=exit_code,
        realtime_ms=int(_number(trace, "realtime", traces.duration)),
        peak_rss=int(_number(trace, "peak_rss", traces.memory)),
        read_bytes=int(_number(trace, "rchar", traces.memory) or _number(trace, "read_bytes", traces.memory)),
        run=run_name,
        attempt=int(_number(trace, "attempt")) or 1,
        requested_memory=int(_number(trace, "memory", traces.memory)),
        requested_cpus=_number(trace, "cpus"),
        requested_time_ms=int(_number(trace, "time", traces.duration)),
        duration_ms=int(_number(trace, "duration", traces.duration)),
        cpu_percent=_number(trace, "%cpu"),
        peak_vmem=int(_number(trace, "peak_vmem", traces.memory)),
        write_bytes=int(_number(trace, "wchar", traces.memory) or _number(trace, "write_bytes", traces.memory)),
        error=str(trace.get("error_action") or ""),
        task_hash=str(trace.get("hash") or ""),
        task_name=str(trace.get("name") or ""),
        submitted_at=submit / 1000,
        completed_at=complete / 1000,
        source="weblog",
    )
    return Parsed(event, run_name, observation)
