"""All SQL of the environments capability, as small functions over a ``Connection``.

The operations compose these inside one transaction (``Core.commit``) with the audit record
and the event of the same change, so they commit together or not at all. The statements an
identical-spec create runs are built once, here, and executed with parameters (see
``store/store.py`` for why).
"""

from __future__ import annotations

import functools
import time
from dataclasses import fields
from typing import Any, cast

from sqlalchemy import Connection, Table, Update, bindparam, delete, func, insert, select, update

from envplane.environments.service.records import EnvRecord
from envplane.environments.service.tables import EnvironmentRow, ResolutionRow

Key = tuple[str, str, str]
ENVS = cast(Table, EnvironmentRow.__table__)  # the declarative model's table
RESOLUTIONS = cast(Table, ResolutionRow.__table__)  # the declarative model's table
_FIELDS = [f.name for f in fields(EnvRecord)]
_COLUMNS = [ENVS.c[name] for name in _FIELDS]
# The key's parameters are named apart from the columns: an UPDATE's SET takes the column names.
_WHERE_KEY = (
    ENVS.c.workflow_id == bindparam("key_workflow"),
    ENVS.c.node_id == bindparam("key_node"),
    ENVS.c.version_id == bindparam("key_version"),
)
_GET = select(*_COLUMNS).where(*_WHERE_KEY)
_INSERT = insert(ENVS).returning(*_COLUMNS)
_TOUCH = update(ENVS).where(*_WHERE_KEY).values(last_used_at=bindparam("when"))
_DELETE = delete(ENVS).where(*_WHERE_KEY)
_GET_RESOLUTION = select(RESOLUTIONS.c.pyproject_toml, RESOLUTIONS.c.uv_lock).where(
    RESOLUTIONS.c.spec_hash == bindparam("spec")
)
_UPDATE_RESOLUTION = (
    update(RESOLUTIONS)
    .where(RESOLUTIONS.c.spec_hash == bindparam("spec"))
    .values(pyproject_toml=bindparam("pyproject_toml"), uv_lock=bindparam("uv_lock"))
)
_INSERT_RESOLUTION = insert(RESOLUTIONS)
# What a new row holds where the caller gave nothing.
_DEFAULTS: dict[str, Any] = {
    "status": "",
    "python_request": "",
    "python_version": "",
    "interpreter": "",
    "build_id": "",
    "pyproject_toml": "",
    "uv_lock": "",
    "error": "",
    "created_at": 0.0,
    "updated_at": 0.0,
    "last_used_at": 0.0,
}


def _key(key: Key) -> dict[str, str]:
    return {"key_workflow": key[0], "key_node": key[1], "key_version": key[2]}


def record_of(row: Any) -> EnvRecord:
    return EnvRecord(*row)


@functools.lru_cache(maxsize=64)
def _update_of(columns: frozenset[str]) -> Update:
    """The UPDATE that sets these columns (one per distinct set: the call sites are few)."""
    return update(ENVS).where(*_WHERE_KEY).values({name: bindparam(name) for name in columns}).returning(*_COLUMNS)


def get_env(db: Connection, key: Key) -> EnvRecord | None:
    row = db.execute(_GET, _key(key)).first()
    return record_of(row) if row else None


def list_envs(
    db: Connection,
    *,
    workflow_id: str = "",
    node_id: str = "",
    status: str = "",
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[EnvRecord], int]:
    conditions = []
    if workflow_id:
        conditions.append(ENVS.c.workflow_id == workflow_id)
    if node_id:
        conditions.append(ENVS.c.node_id == node_id)
    if status:
        conditions.append(ENVS.c.status == status)
    total = db.scalar(select(func.count()).select_from(ENVS).where(*conditions)) or 0
    query = (
        select(*_COLUMNS)
        .where(*conditions)
        .order_by(ENVS.c.workflow_id, ENVS.c.node_id, ENVS.c.version_id)
        .offset(offset)
        .limit(limit)
    )
    return [record_of(r) for r in db.execute(query)], total


def status_counts(db: Connection) -> dict[str, int]:
    rows = db.execute(select(ENVS.c.status, func.count()).group_by(ENVS.c.status)).all()
    return {status: count for status, count in rows}


def all_envs(db: Connection) -> list[EnvRecord]:
    return [record_of(r) for r in db.execute(select(*_COLUMNS))]


def upsert_env(db: Connection, key: Key, **values: Any) -> EnvRecord:
    """Set these columns of the env's row, creating the row if there is none."""
    row = db.execute(_update_of(frozenset(values)), {**_key(key), **values}).first()
    if row is None:
        identity = {"workflow_id": key[0], "node_id": key[1], "version_id": key[2]}
        row = db.execute(_INSERT, {**_DEFAULTS, **identity, **values}).one()
    return record_of(row)


def mark_ready(db: Connection, key: Key, **values: Any) -> EnvRecord:
    """The env is READY with these values (the commit of every operation that succeeded)."""
    now = time.time()
    return upsert_env(db, key, status="READY", error="", updated_at=now, last_used_at=now, **values)


def mark_status(db: Connection, key: Key, status: str, error: str) -> EnvRecord:
    """The env's status changes, and why, with its files as they are (FAILED, BROKEN, READY again)."""
    return upsert_env(db, key, status=status, error=error, updated_at=time.time())


def touch_env(db: Connection, key: Key, when: float) -> bool:
    """Set ``last_used_at`` if the env exists; never creates a row (unlike ``upsert_env``)."""
    return bool(db.execute(_TOUCH, {**_key(key), "when": when}).rowcount)


def delete_env(db: Connection, key: Key) -> bool:
    return bool(db.execute(_DELETE, _key(key)).rowcount)


def build_references(db: Connection) -> set[str]:
    return {b for b in db.scalars(select(ENVS.c.build_id).distinct()) if b}


def get_resolution(db: Connection, spec_hash: str) -> tuple[str, str] | None:
    row = db.execute(_GET_RESOLUTION, {"spec": spec_hash}).first()
    return (row.pyproject_toml, row.uv_lock) if row else None


def put_resolution(db: Connection, spec_hash: str, pyproject: str, lock: str) -> None:
    values = {"spec": spec_hash, "pyproject_toml": pyproject, "uv_lock": lock}
    if not db.execute(_UPDATE_RESOLUTION, values).rowcount:
        db.execute(
            _INSERT_RESOLUTION,
            {"spec_hash": spec_hash, "pyproject_toml": pyproject, "uv_lock": lock, "created_at": time.time()},
        )
