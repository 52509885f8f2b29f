"""What an engine can use of the evidence: per process, the first attempt's memory and the
sizes of its retries, as a Nextflow config or a JSON profile for other engines.

The Nextflow config sets, per process, ``memory`` as a closure over ``task.attempt`` that reads
envplane's sizes (the first attempt's, then each retry's), an ``errorStrategy`` that retries
only the out-of-memory-like exits (104, 130-145) and a ``resourceLimits`` block (Nextflow
24.04+) that no size passes. Nextflow's memory units are binary (1 MB = 2^20 bytes).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass

from envplane.errors import InvalidArgument
from envplane.observations.service.decisions import OOM_EXITS

FORMATS = ("nextflow", "json")
MB = 2**20


@dataclass(frozen=True)
class Recommendation:
    process: str
    memory_bytes: int
    retry_memory_bytes: list[int]
    tasks_seen: int
    max_peak_rss_bytes: int
    reason: str


@dataclass(frozen=True)
class Limits:
    max_retries: int = 3
    memory_bytes: int = 0  # 0: none
    cpus: float = 0.0
    time_ms: int = 0

    def check(self) -> None:
        if not 0 <= self.max_retries <= 20:
            raise InvalidArgument(f"max_retries must be within 0..20, got {self.max_retries}")
        if self.memory_bytes < 0 or self.cpus < 0 or self.time_ms < 0:
            raise InvalidArgument("max_memory_bytes, max_cpus and max_time_ms must be >= 0 (0: no limit)")


@dataclass(frozen=True)
class Profile:
    pipeline: str
    policy: str
    observations: int
    limits: Limits
    recommendations: list[Recommendation]


def render(profile: Profile, format_: str) -> str:
    if format_ not in FORMATS:
        raise InvalidArgument(f"format {format_!r} is not one of {', '.join(FORMATS)}")
    return nextflow_config(profile) if format_ == "nextflow" else json_profile(profile)


def _mb(size: int) -> str:
    return f"{max(1, math.ceil(size / MB))}.MB"


def _quoted(name: str) -> str:
    return "'" + name.replace("\\", "\\\\").replace("'", "\\'") + "'"


def nextflow_config(profile: Profile) -> str:
    limits = profile.limits
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    exits = ", ".join(str(code) for code in sorted(OOM_EXITS))
    lines = [
        f"// envplane: memory for pipeline {profile.pipeline!r}, policy {profile.policy},",
        f"// from {profile.observations} observation(s), {stamp}. Use it with: nextflow run ... -c <this file>",
        "// Out-of-memory-like exits are retried with envplane's next size; other failures are not.",
        "process {",
    ]
    parts = []
    if limits.memory_bytes:
        parts.append(f"memory: {_mb(limits.memory_bytes)}")
    if limits.cpus:
        parts.append(f"cpus: {math.floor(limits.cpus)}")
    if limits.time_ms:
        parts.append(f"time: {math.ceil(limits.time_ms / 1000)}.s")
    if parts:
        lines.append(f"    resourceLimits = [ {', '.join(parts)} ]")
    lines += [
        f"    maxRetries = {limits.max_retries}",
        f"    errorStrategy = {{ task.exitStatus in [{exits}] ? 'retry' : 'terminate' }}",
    ]
    for rec in profile.recommendations:
        sizes = [rec.memory_bytes, *rec.retry_memory_bytes]
        listed = ", ".join(_mb(size) for size in sizes)
        lines += [
            "",
            f"    // {rec.tasks_seen} completed, peak at most {_mb(rec.max_peak_rss_bytes)}: {rec.reason}",
            f"    withName: {_quoted(rec.process)} {{",
            f"        memory = {{ [{listed}][Math.min(task.attempt, {len(sizes)}) - 1] }}",
            "    }",
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"


def json_profile(profile: Profile) -> str:
    document = {
        "pipeline": profile.pipeline,
        "policy": profile.policy,
        "observations": profile.observations,
        "generated_at": time.time(),
        "retry_exit_codes": sorted(OOM_EXITS),
        "resource_limits": {
            "memory_bytes": profile.limits.memory_bytes,
            "cpus": profile.limits.cpus,
            "time_ms": profile.limits.time_ms,
        },
        "max_retries": profile.limits.max_retries,
        "processes": {
            rec.process: {k: v for k, v in asdict(rec).items() if k != "process"} for rec in profile.recommendations
        },
    }
    return json.dumps(document, indent=2) + "\n"
