"""SQL of the observations capability (run inside ``core.commit`` or ``store.run``)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Float, Table, and_, case, func, select
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from envplane.observations.service.decisions import MEMORY_FAILURE, Decision, Observation
from envplane.observations.service.tables import ObservationRow, PipelineRow

TABLE = cast(Table, ObservationRow.__table__)
PIPELINES = cast(Table, PipelineRow.__table__)
_OBSERVATION_FIELDS = [name for name in Observation.__dataclass_fields__ if name not in ("event_type",)]
GBH = 2**30 * 3_600_000  # byte·ms in a GB·h


@dataclass(frozen=True)
class Stored:
    """One stored observation and its action."""

    id: int
    observation: Observation
    decision: Decision
    action_id: str
    recorded_at: float


@dataclass(frozen=True)
class Filter:
    pipeline: str = ""
    process: str = ""
    status: str = ""
    run: str = ""

    def where(self) -> ColumnElement[bool]:
        clauses = [
            TABLE.c[name] == value
            for name, value in (("pipeline", self.pipeline), ("process", self.process), ("run", self.run))
            if value
        ]
        if self.status:
            clauses.append(TABLE.c.status == self.status.upper())
        return and_(True, *clauses)


def row_values(observation: Observation, decision: Decision, action_id: str, now: float) -> dict[str, Any]:
    values = {name: getattr(observation, name) for name in _OBSERVATION_FIELDS}
    values["task_id"] = str(observation.task_id)
    values["status"] = observation.status.upper()
    values["event_id"] = observation.event_id or None
    values.update(
        action_kind=decision.kind,
        action_memory=decision.memory_bytes,
        action_id=action_id,
        action_json=json.dumps(decision.details(), sort_keys=True),
        recorded_at=now,
    )
    return values


def insert_new(db: Connection, rows: Sequence[dict[str, Any]]) -> int:
    """Insert the rows (ids given), skipping any whose ``event_id`` is stored already; how many
    were inserted (exact on SQLite and PostgreSQL; elsewhere a lower bound that sends the
    caller to look)."""
    if not rows:
        return 0
    name = db.dialect.name
    if name in ("sqlite", "postgresql"):
        dialect_insert = sqlite_insert if name == "sqlite" else postgresql_insert
        statement = dialect_insert(TABLE).on_conflict_do_nothing(index_elements=["event_id"])
        result = db.execute(statement, list(rows))
        return result.rowcount if db.dialect.supports_sane_multi_rowcount else -1
    stored = by_event_ids(db, [row["event_id"] for row in rows if row["event_id"]])
    db.execute(TABLE.insert(), [row for row in rows if row["event_id"] not in stored])
    return -1


def max_id(db: Connection) -> int:
    return int(db.execute(select(func.max(TABLE.c.id))).scalar() or 0)


def _observation_of(row: Any) -> Observation:
    values = {name: getattr(row, name) for name in _OBSERVATION_FIELDS}
    values["event_id"] = values["event_id"] or ""
    return Observation(event_type="", **values)


def stored_of(row: Any) -> Stored:
    decision = Decision.of_details(json.loads(row.action_json))
    return Stored(row.id, _observation_of(row), decision, row.action_id, row.recorded_at)


def by_event_ids(db: Connection, event_ids: Sequence[str]) -> dict[str, Stored]:
    if not event_ids:
        return {}
    rows = db.execute(select(TABLE).where(TABLE.c.event_id.in_(list(event_ids)))).all()
    return {row.event_id: stored_of(row) for row in rows}


def completed(db: Connection, pipeline: str = "", process: str = "") -> Iterator[Observation]:
    """Every completed task with a measured peak, in the order they were stored (the evidence)."""
    query = select(TABLE).where(TABLE.c.status == "COMPLETED", TABLE.c.peak_rss > 0)
    if pipeline:
        query = query.where(TABLE.c.pipeline == pipeline, TABLE.c.process == process)
    for row in db.execute(query.order_by(TABLE.c.id)):
        yield _observation_of(row)  # the evidence needs no action: its JSON is not parsed


def page(db: Connection, where: Filter, offset: int, limit: int) -> tuple[list[Stored], int]:
    total = db.execute(select(func.count()).select_from(TABLE).where(where.where())).scalar_one()
    rows = db.execute(select(TABLE).where(where.where()).order_by(TABLE.c.id).offset(offset).limit(limit)).all()
    return [stored_of(row) for row in rows], total


def all_of(db: Connection, pipeline: str) -> list[Stored]:
    query = select(TABLE).order_by(TABLE.c.id)
    if pipeline:
        query = query.where(TABLE.c.pipeline == pipeline)
    return [stored_of(row) for row in db.execute(query)]


@dataclass(frozen=True)
class Counts:
    pipeline: str
    process: str
    observations: int
    completed: int
    failed: int
    memory_failures: int
    requested_max: int
    realtime_ms: int
    wasted: float  # GB·h at the requests, of completed tasks
    last_seen: float


def counts(db: Connection, pipeline: str = "", process: str = "") -> list[Counts]:
    c = TABLE.c
    done = c.status == "COMPLETED"
    # decisions.is_memory_failure, in SQL (action_json is the details, its keys sorted)
    oom = c.action_kind.in_(("RETRY_WITH_RESOURCES", "FAIL")) & c.action_json.like(f'%"reason": "{MEMORY_FAILURE}%')
    over = case(
        (done & (c.requested_memory > c.peak_rss), sql_cast(c.requested_memory - c.peak_rss, Float) * c.realtime_ms),
        else_=0,
    )
    query = select(
        c.pipeline,
        c.process,
        func.count(),
        func.sum(case((done, 1), else_=0)),
        func.sum(case((c.status == "FAILED", 1), else_=0)),
        func.sum(case((oom, 1), else_=0)),
        func.max(c.requested_memory),
        func.sum(case((done, c.realtime_ms), else_=0)),
        func.sum(over),
        func.max(c.recorded_at),
    ).group_by(c.pipeline, c.process)
    if pipeline:
        query = query.where(c.pipeline == pipeline)
    if process:
        query = query.where(c.process == process)
    found = []
    for r in db.execute(query.order_by(c.pipeline, c.process)):
        n_done, n_failed, n_oom, requested, realtime = (int(v or 0) for v in r[3:8])
        found.append(
            Counts(
                r[0], r[1], r[2], n_done, n_failed, n_oom, requested, realtime, float(r[8] or 0) / GBH, float(r[9] or 0)
            )
        )
    return found


@dataclass(frozen=True)
class PipelineSettings:
    name: str
    policy: str
    memory_cap: int


def pipelines(db: Connection) -> list[PipelineSettings]:
    rows = db.execute(select(PIPELINES).order_by(PIPELINES.c.name)).all()
    return [PipelineSettings(row.name, row.policy, row.memory_cap) for row in rows]


def put_pipeline(db: Connection, settings: PipelineSettings, now: float) -> None:
    exists = db.execute(select(PIPELINES.c.name).where(PIPELINES.c.name == settings.name)).first()
    values = {"policy": settings.policy, "memory_cap": settings.memory_cap, "updated_at": now}
    if exists:
        db.execute(PIPELINES.update().where(PIPELINES.c.name == settings.name).values(**values))
    else:
        db.execute(PIPELINES.insert().values(name=settings.name, **values))


def delete(db: Connection, pipeline: str, process: str = "") -> list[tuple[str, int]]:
    """Delete a pipeline's rows (or one process's); the processes touched, with their counts."""
    where = TABLE.c.pipeline == pipeline
    if process:
        where = where & (TABLE.c.process == process)
    found = db.execute(select(TABLE.c.process, func.count()).where(where).group_by(TABLE.c.process)).all()
    if found:
        db.execute(TABLE.delete().where(where))
    return [(row[0], int(row[1])) for row in found]
