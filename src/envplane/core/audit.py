"""The audit log: one row per operation of any capability, written RUNNING when it starts and
finished SUCCEEDED or FAILED, in the same transaction as the change it made.

Records of running operations are never pruned or deleted; at start-up, the ones a dead daemon
left RUNNING are finished FAILED (``fail_running``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Float, Index, Integer, Select, String, Text, delete, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from envplane.core.subject import Subject
from envplane.store import Base


class OpStatus(StrEnum):
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class OperationRow(Base):
    __tablename__ = "operations"
    __table_args__ = (
        Index("ix_operations_env", "workflow_id", "node_id", "version_id"),
        Index("ix_operations_subject", "subject_kind", "subject_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subject_kind: Mapped[str] = mapped_column(String(32), default="")
    subject_id: Mapped[str] = mapped_column(String(256), default="")
    workflow_id: Mapped[str] = mapped_column(String(128), default="")
    node_id: Mapped[str] = mapped_column(String(128), default="")
    version_id: Mapped[str] = mapped_column(String(128), default="")
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


def record_of(row: OperationRow) -> OperationRecord:
    return OperationRecord(
        id=row.id,
        subject=Subject(row.subject_kind, row.subject_id, row.workflow_id, row.node_id, row.version_id),
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


def start(session: Session, subject: Subject, operation: str, details: dict[str, Any]) -> int:
    row = OperationRow(
        subject_kind=subject.kind,
        subject_id=subject.id,
        workflow_id=subject.workflow_id,
        node_id=subject.node_id,
        version_id=subject.version_id,
        operation=operation,
        status=OpStatus.RUNNING,
        started_at=time.time(),
        details=details,
    )
    session.add(row)
    session.flush()
    return row.id


def finish(
    session: Session,
    op_id: int,
    *,
    status: str,
    stdout: str = "",
    stderr: str = "",
    exit_code: int | None = None,
    error: str = "",
    details: dict[str, Any] | None = None,
) -> OperationRecord:
    row = session.get(OperationRow, op_id)
    if row is None:  # only a deletion that ignored RUNNING records could do this
        raise LookupError(f"operation {op_id} vanished while it ran")
    now = time.time()
    row.status = status
    row.finished_at = now
    row.duration_ms = round((now - row.started_at) * 1000)
    row.stdout, row.stderr, row.exit_code, row.error = stdout, stderr, exit_code, error
    if details:
        row.details = {**(row.details or {}), **details}
    session.flush()
    return record_of(row)


def fail_running(session: Session, reason: str) -> list[OperationRecord]:
    """Finish FAILED every record still RUNNING (start-up: their daemon died)."""
    rows = session.scalars(select(OperationRow).where(OperationRow.status == OpStatus.RUNNING)).all()
    return [finish(session, r.id, status=OpStatus.FAILED, error=reason) for r in rows]


def get(session: Session, op_id: int) -> OperationRecord | None:
    row = session.get(OperationRow, op_id)
    return record_of(row) if row else None


def _filtered(query: Select[Any], where: OperationFilter) -> Select[Any]:
    conditions = {
        OperationRow.subject_kind: where.kind,
        OperationRow.subject_id: where.subject_id,
        OperationRow.workflow_id: where.workflow_id,
        OperationRow.node_id: where.node_id,
        OperationRow.operation: where.operation,
        OperationRow.status: where.status,
    }
    for column, value in conditions.items():
        if value:
            query = query.where(column == value)
    if where.version_id is not None:
        query = query.where(OperationRow.version_id == where.version_id)
    return query


def list_operations(
    session: Session, where: OperationFilter, *, offset: int = 0, limit: int = 50
) -> tuple[list[OperationRecord], int]:
    """A page of matching records, newest first, and how many match in all."""
    query = _filtered(select(OperationRow), where)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(OperationRow.id.desc()).offset(offset).limit(limit)).all()
    return [record_of(r) for r in rows], total


def delete_operations(
    session: Session, where: OperationFilter, *, before: float | None = None
) -> tuple[int, list[str]]:
    """Delete finished records matching ``where``: (how many, the distinct node ids)."""

    def matching(query: Any) -> Any:
        query = _filtered(query, where).where(OperationRow.status != OpStatus.RUNNING)
        return query if before is None else query.where(OperationRow.started_at < before)

    nodes = sorted(session.scalars(matching(select(OperationRow.node_id).distinct())).all())
    result = session.execute(matching(delete(OperationRow)))
    return int(getattr(result, "rowcount", 0) or 0), nodes
