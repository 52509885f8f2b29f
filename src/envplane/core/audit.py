"""The audit log: one row per operation of any capability, written RUNNING when it starts and
finished SUCCEEDED or FAILED, in the same transaction as the change it made.

Records of running operations are never pruned or deleted; at start-up, the ones a dead daemon
left RUNNING are finished FAILED (``fail_running``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import (
    JSON,
    Connection,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.orm import Mapped, mapped_column

from envplane.core.subject import SUBJECT_COLUMNS, Subject, SubjectColumns
from envplane.store import Base


class OpStatus(StrEnum):
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class OperationRow(SubjectColumns, Base):
    __tablename__ = "operations"
    __table_args__ = (
        Index("ix_operations_env", "workflow_id", "node_id", "version_id"),
        Index("ix_operations_subject", "subject_kind", "subject_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    operation: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[float] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    duration_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    stdout: Mapped[str] = mapped_column(Text, default="")
    stderr: Mapped[str] = mapped_column(Text, default="")
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


@dataclass(frozen=True)
class OperationRecord:
    """A plain, frozen copy of a row: safe to pass between threads and faces."""

    id: int
    subject: Subject
    operation: str
    status: str
    started_at: float
    finished_at: float | None
    duration_ms: int | None
    stdout: str
    stderr: str
    exit_code: int | None
    error: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OperationFilter:
    """Which records a listing or a deletion is about ("" = any)."""

    kind: str = ""
    subject_id: str = ""
    workflow_id: str = ""
    node_id: str = ""
    version_id: str | None = None  # None = any version ("" is the unversioned env)
    operation: str = ""
    status: str = ""


OPERATIONS = cast(Table, OperationRow.__table__)  # the declarative model's table
_RECORD_COLUMNS = [
    OPERATIONS.c[name]
    for name in (
        "id",
        *SUBJECT_COLUMNS,
        "operation",
        "status",
        "started_at",
        "finished_at",
        "duration_ms",
        "stdout",
        "stderr",
        "exit_code",
        "error",
        "details",
    )
]
_START = insert(OPERATIONS).returning(OPERATIONS.c.id)
_BEFORE_FINISH = select(OPERATIONS.c.started_at, OPERATIONS.c.details).where(OPERATIONS.c.id == bindparam("op"))
_FINISH = (
    update(OPERATIONS)
    .where(OPERATIONS.c.id == bindparam("op"))
    .values(
        {
            name: bindparam(name)
            for name in ("status", "finished_at", "duration_ms", "stdout", "stderr", "exit_code", "error", "details")
        }
    )
    .returning(*_RECORD_COLUMNS)
)
_GET = select(*_RECORD_COLUMNS).where(OPERATIONS.c.id == bindparam("op"))


def record_of(row: Any) -> OperationRecord:
    return OperationRecord(
        id=row.id,
        subject=Subject.of_row(row),
        operation=row.operation,
        status=row.status,
        started_at=row.started_at,
        finished_at=row.finished_at,
        duration_ms=row.duration_ms,
        stdout=row.stdout,
        stderr=row.stderr,
        exit_code=row.exit_code,
        error=row.error,
        details=dict(row.details or {}),
    )


def _values(subject: Subject, operation: str, details: dict[str, Any], started_at: float) -> dict[str, Any]:
    return {
        **subject.columns(),
        "operation": operation,
        "status": OpStatus.RUNNING,
        "started_at": started_at,
        "finished_at": None,
        "duration_ms": None,
        "stdout": "",
        "stderr": "",
        "exit_code": None,
        "error": "",
        "details": details,
    }


def start(db: Connection, subject: Subject, operation: str, details: dict[str, Any]) -> int:
    """Record an operation RUNNING; it is finished later (``finish``)."""
    return int(db.execute(_START, _values(subject, operation, details, time.time())).scalar_one())


def record(
    db: Connection,
    subject: Subject,
    operation: str,
    details: dict[str, Any],
    *,
    started_at: float,
    status: str,
    exit_code: int | None = None,
    error: str = "",
    stderr: str = "",
) -> OperationRecord:
    """Record an operation that is over already (one statement: the identical-spec create)."""
    now = time.time()
    values = _values(subject, operation, details, started_at)
    values.update(
        status=status,
        finished_at=now,
        duration_ms=round((now - started_at) * 1000),
        exit_code=exit_code,
        error=error,
        stderr=stderr,
    )
    op_id = int(db.execute(_START, values).scalar_one())
    return OperationRecord(
        op_id, subject, operation, status, started_at, now, values["duration_ms"], "", stderr, exit_code, error, details
    )


def finish(
    db: Connection,
    op_id: int,
    *,
    status: str,
    stdout: str = "",
    stderr: str = "",
    exit_code: int | None = None,
    error: str = "",
    details: dict[str, Any] | None = None,
) -> OperationRecord:
    before = db.execute(_BEFORE_FINISH, {"op": op_id}).first()
    if before is None:  # only a deletion that ignored RUNNING records could do this
        raise LookupError(f"operation {op_id} vanished while it ran")
    now = time.time()
    merged = {**(before.details or {}), **(details or {})}
    values = {
        "op": op_id,
        "status": status,
        "finished_at": now,
        "duration_ms": round((now - before.started_at) * 1000),
        "stdout": stdout,
        "stderr": stderr,
        "exit_code": exit_code,
        "error": error,
        "details": merged,
    }
    return record_of(db.execute(_FINISH, values).one())


def fail_running(db: Connection, reason: str) -> list[OperationRecord]:
    """Finish FAILED every record still RUNNING (start-up: their daemon died)."""
    running = db.scalars(select(OPERATIONS.c.id).where(OPERATIONS.c.status == OpStatus.RUNNING)).all()
    return [finish(db, op_id, status=OpStatus.FAILED, error=reason) for op_id in running]


def get(db: Connection, op_id: int) -> OperationRecord | None:
    row = db.execute(_GET, {"op": op_id}).first()
    return record_of(row) if row else None


def _filtered(query: Any, where: OperationFilter) -> Any:
    conditions = {
        OPERATIONS.c.subject_kind: where.kind,
        OPERATIONS.c.subject_id: where.subject_id,
        OPERATIONS.c.workflow_id: where.workflow_id,
        OPERATIONS.c.node_id: where.node_id,
        OPERATIONS.c.operation: where.operation,
        OPERATIONS.c.status: where.status,
    }
    for column, value in conditions.items():
        if value:
            query = query.where(column == value)
    if where.version_id is not None:
        query = query.where(OPERATIONS.c.version_id == where.version_id)
    return query


def list_operations(
    db: Connection, where: OperationFilter, *, offset: int = 0, limit: int = 50
) -> tuple[list[OperationRecord], int]:
    """A page of matching records, newest first, and how many match in all."""
    total = db.scalar(_filtered(select(func.count()).select_from(OPERATIONS), where)) or 0
    query = _filtered(select(*_RECORD_COLUMNS), where).order_by(OPERATIONS.c.id.desc()).offset(offset).limit(limit)
    return [record_of(r) for r in db.execute(query)], total


def delete_operations(db: Connection, where: OperationFilter, *, before: float | None = None) -> tuple[int, list[str]]:
    """Delete finished records matching ``where``: (how many, the distinct node ids)."""

    def matching(query: Any) -> Any:
        query = _filtered(query, where).where(OPERATIONS.c.status != OpStatus.RUNNING)
        return query if before is None else query.where(OPERATIONS.c.started_at < before)

    nodes = sorted(db.scalars(matching(select(OPERATIONS.c.node_id).distinct())).all())
    result = db.execute(matching(delete(OPERATIONS)))
    return int(result.rowcount or 0), nodes
