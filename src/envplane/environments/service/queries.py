"""All SQL of the environments capability, as small functions over a ``Session``.

The operations compose these inside one transaction (``Core.commit``) with the audit record
and the event of the same change, so they commit together or not at all.
"""

from __future__ import annotations

import time
from dataclasses import fields
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from envplane.environments.service.records import EnvRecord
from envplane.environments.service.tables import EnvironmentRow, ResolutionRow

Key = tuple[str, str, str]
_FIELDS = [f.name for f in fields(EnvRecord)]


def record_of(row: EnvironmentRow) -> EnvRecord:
    return EnvRecord(**{name: getattr(row, name) for name in _FIELDS})


def _where_key(key: Key) -> tuple[Any, ...]:
    workflow_id, node_id, version_id = key
    return (
        EnvironmentRow.workflow_id == workflow_id,
        EnvironmentRow.node_id == node_id,
        EnvironmentRow.version_id == version_id,
    )


def env_row(session: Session, key: Key) -> EnvironmentRow | None:
    return session.scalars(select(EnvironmentRow).where(*_where_key(key))).one_or_none()


def get_env(session: Session, key: Key) -> EnvRecord | None:
    row = env_row(session, key)
    return record_of(row) if row else None


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
    return [record_of(r) for r in rows], total


def status_counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(EnvironmentRow.status, func.count()).group_by(EnvironmentRow.status)).all()
    return {status: count for status, count in rows}


def all_envs(session: Session) -> list[EnvRecord]:
    return [record_of(r) for r in session.scalars(select(EnvironmentRow)).all()]


def upsert_env(session: Session, key: Key, **values: Any) -> EnvRecord:
    row = env_row(session, key)
    if row is None:
        row = EnvironmentRow(workflow_id=key[0], node_id=key[1], version_id=key[2])
        session.add(row)
    for name, value in values.items():
        setattr(row, name, value)
    session.flush()
    return record_of(row)


def mark_ready(session: Session, key: Key, **values: Any) -> EnvRecord:
    """The env is READY with these values (the commit of every operation that succeeded)."""
    now = time.time()
    return upsert_env(session, key, status="READY", error="", updated_at=now, last_used_at=now, **values)


def touch_env(session: Session, key: Key, when: float) -> bool:
    """Set ``last_used_at`` if the env exists; never creates a row (unlike ``upsert_env``)."""
    result = session.execute(update(EnvironmentRow).where(*_where_key(key)).values(last_used_at=when))
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


def get_resolution(session: Session, spec_hash: str) -> tuple[str, str] | None:
    row = session.get(ResolutionRow, spec_hash)
    return (row.pyproject_toml, row.uv_lock) if row else None


def put_resolution(session: Session, spec_hash: str, pyproject: str, lock: str) -> None:
    row = session.get(ResolutionRow, spec_hash)
    if row is None:
        session.add(ResolutionRow(spec_hash=spec_hash, pyproject_toml=pyproject, uv_lock=lock, created_at=time.time()))
    else:
        row.pyproject_toml, row.uv_lock = pyproject, lock
