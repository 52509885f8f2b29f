"""All SQL of envplane, as small functions over a ``Session``, plus :class:`Store` to run them.

The service composes these inside one transaction (``Store.transaction``) so an operation's
state change, its audit record and its domain event commit together or not at all.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import fields
from typing import Any, TypeVar

from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from envplane.store.database import make_engine
from envplane.store.models import EnvironmentRow, EventRow, OperationRow, ResolutionRow
from envplane.store.records import EnvRecord, EventRecord, OperationRecord

T = TypeVar("T")
Key = tuple[str, str, str]


def env_record(row: EnvironmentRow) -> EnvRecord:
    return EnvRecord(**{f.name: getattr(row, f.name) for f in fields(EnvRecord)})


def operation_record(row: OperationRow) -> OperationRecord:
    return OperationRecord(**{f.name: getattr(row, f.name) for f in fields(OperationRecord)})


def event_record(row: EventRow) -> EventRecord:
    return EventRecord(
        cursor=row.id,
        type=row.type,
        workflow_id=row.workflow_id,
        node_id=row.node_id,
        version_id=row.version_id,
        occurred_at=row.occurred_at,
        payload=dict(row.payload or {}),
    )


# --- environments ---------------------------------------------------------------------------


def env_row(session: Session, key: Key) -> EnvironmentRow | None:
    workflow_id, node_id, version_id = key
    return session.scalars(
        select(EnvironmentRow).where(
            EnvironmentRow.workflow_id == workflow_id,
            EnvironmentRow.node_id == node_id,
            EnvironmentRow.version_id == version_id,
        )
    ).one_or_none()


def get_env(session: Session, key: Key) -> EnvRecord | None:
    row = env_row(session, key)
    return env_record(row) if row else None


def list_envs(
    session: Session,
    *,
    workflow_id: str = "",
    node_id: str = "",
    status: str = "",
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[EnvRecord], int]:
    query = select(EnvironmentRow)
    if workflow_id:
        query = query.where(EnvironmentRow.workflow_id == workflow_id)
    if node_id:
        query = query.where(EnvironmentRow.node_id == node_id)
    if status:
        query = query.where(EnvironmentRow.status == status)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(EnvironmentRow.workflow_id, EnvironmentRow.node_id, EnvironmentRow.version_id)
        .offset(offset)
        .limit(limit)
    ).all()
    return [env_record(r) for r in rows], total


def env_status_counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(EnvironmentRow.status, func.count()).group_by(EnvironmentRow.status)).all()
    return {status: count for status, count in rows}


def all_envs(session: Session) -> list[EnvRecord]:
    return [env_record(r) for r in session.scalars(select(EnvironmentRow)).all()]


def upsert_env(session: Session, key: Key, **values: Any) -> EnvRecord:
    row = env_row(session, key)
    if row is None:
        row = EnvironmentRow(workflow_id=key[0], node_id=key[1], version_id=key[2])
        session.add(row)
    for name, value in values.items():
        setattr(row, name, value)
    session.flush()
    return env_record(row)


def touch_env(session: Session, key: Key, when: float) -> bool:
    """Set ``last_used_at`` if the env exists; never creates a row (unlike ``upsert_env``)."""
    workflow_id, node_id, version_id = key
    result = session.execute(
        update(EnvironmentRow)
        .where(
            EnvironmentRow.workflow_id == workflow_id,
            EnvironmentRow.node_id == node_id,
            EnvironmentRow.version_id == version_id,
        )
        .values(last_used_at=when)
    )
    return bool(getattr(result, "rowcount", 0))


def delete_env(session: Session, key: Key) -> bool:
    row = env_row(session, key)
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True


def build_references(session: Session) -> set[str]:
    return {b for b in session.scalars(select(EnvironmentRow.build_id)).all() if b}


# --- resolutions ----------------------------------------------------------------------------


def get_resolution(session: Session, spec_hash: str) -> tuple[str, str] | None:
    row = session.get(ResolutionRow, spec_hash)
    return (row.pyproject_toml, row.uv_lock) if row else None


def put_resolution(session: Session, spec_hash: str, pyproject: str, lock: str) -> None:
    row = session.get(ResolutionRow, spec_hash)
    if row is None:
        session.add(ResolutionRow(spec_hash=spec_hash, pyproject_toml=pyproject, uv_lock=lock, created_at=time.time()))
    else:
        row.pyproject_toml, row.uv_lock = pyproject, lock


# --- operations -----------------------------------------------------------------------------


def start_operation(session: Session, key: Key, operation: str, details: dict[str, Any]) -> int:
    row = OperationRow(
        workflow_id=key[0],
        node_id=key[1],
        version_id=key[2],
        operation=operation,
        status="RUNNING",
        started_at=time.time(),
        details=details,
    )
    session.add(row)
    session.flush()
    return row.id


def finish_operation(
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
    assert row is not None, f"operation {op_id} vanished"
    now = time.time()
    row.status = status
    row.finished_at = now
    row.duration_ms = round((now - row.started_at) * 1000)
    row.stdout, row.stderr, row.exit_code, row.error = stdout, stderr, exit_code, error
    if details:
        row.details = {**(row.details or {}), **details}
    session.flush()
    return operation_record(row)


def _operation_filter(
    query: Any, workflow_id: str, node_id: str, version_id: str | None, operation: str, status: str
) -> Any:
    if workflow_id:
        query = query.where(OperationRow.workflow_id == workflow_id)
    if node_id:
        query = query.where(OperationRow.node_id == node_id)
    if version_id is not None:
        query = query.where(OperationRow.version_id == version_id)
    if operation:
        query = query.where(OperationRow.operation == operation)
    if status:
        query = query.where(OperationRow.status == status)
    return query


def list_operations(
    session: Session,
    *,
    workflow_id: str = "",
    node_id: str = "",
    version_id: str | None = None,
    operation: str = "",
    status: str = "",
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[OperationRecord], int]:
    query = _operation_filter(select(OperationRow), workflow_id, node_id, version_id, operation, status)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(OperationRow.id.desc()).offset(offset).limit(limit)).all()
    return [operation_record(r) for r in rows], total


def delete_operations(
    session: Session, *, workflow_id: str = "", node_id: str = "", before: float | None = None
) -> tuple[int, list[str]]:
    """Delete finished records matching the filter: (how many, the distinct node ids)."""

    def matching(query: Any) -> Any:
        query = _operation_filter(query, workflow_id, node_id, None, "", "").where(OperationRow.status != "RUNNING")
        return query if before is None else query.where(OperationRow.started_at < before)

    nodes = sorted(session.scalars(matching(select(OperationRow.node_id).distinct())).all())
    result = session.execute(matching(delete(OperationRow)))
    return int(getattr(result, "rowcount", 0) or 0), nodes


def fail_running_operations(session: Session, reason: str) -> list[OperationRecord]:
    rows = session.scalars(select(OperationRow).where(OperationRow.status == "RUNNING")).all()
    return [finish_operation(session, r.id, status="FAILED", error=reason) for r in rows]


# --- events ---------------------------------------------------------------------------------


def add_event(session: Session, type_: str, key: Key, payload: dict[str, Any]) -> EventRecord:
    row = EventRow(
        type=type_,
        workflow_id=key[0],
        node_id=key[1],
        version_id=key[2],
        occurred_at=time.time(),
        payload=payload,
    )
    session.add(row)
    session.flush()
    return event_record(row)


def events_after(session: Session, *, cursor: int, limit: int = 500, types: Sequence[str] = ()) -> list[EventRecord]:
    query = select(EventRow).where(EventRow.id > cursor)
    if types:
        query = query.where(EventRow.type.in_(list(types)))
    rows = session.scalars(query.order_by(EventRow.id).limit(limit)).all()
    return [event_record(r) for r in rows]


def latest_event_cursor(session: Session) -> int:
    return int(session.scalar(select(func.max(EventRow.id))) or 0)


class Store:
    """Owns the engine; runs a function inside one transaction on a worker thread."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def run_sync(self, fn: Callable[[Session], T]) -> T:
        with self._sessions.begin() as session:
            return fn(session)

    async def run(self, fn: Callable[[Session], T]) -> T:
        return await asyncio.to_thread(self.run_sync, fn)

    def close(self) -> None:
        self.engine.dispose()
