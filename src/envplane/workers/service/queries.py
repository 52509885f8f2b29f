"""SQL of the workers capability (run inside ``core.commit`` or ``store.run``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table, delete, select, update
from sqlalchemy.engine import Connection

from envplane.core.subject import Subject
from envplane.workers.service.config import PoolConfig
from envplane.workers.service.events import POOL
from envplane.workers.service.tables import PoolRow

TABLE = cast(Table, PoolRow.__table__)  # the declarative model's table


@dataclass(frozen=True)
class StoredPool:
    name: str
    workflow_id: str
    node_id: str
    version_id: str
    config: PoolConfig
    created_at: float
    updated_at: float


def subject_of(stored: StoredPool) -> Subject:
    """What a pool's audit records and events are about: ``pool/<name>`` of its env's node."""
    return Subject(POOL, stored.name, stored.workflow_id, stored.node_id, stored.version_id)


def _stored(row: object) -> StoredPool:
    return StoredPool(
        row.name,  # type: ignore[attr-defined]
        row.workflow_id,  # type: ignore[attr-defined]
        row.node_id,  # type: ignore[attr-defined]
        row.version_id,  # type: ignore[attr-defined]
        PoolConfig.from_json(json.loads(row.config_json)),  # type: ignore[attr-defined]
        row.created_at,  # type: ignore[attr-defined]
        row.updated_at,  # type: ignore[attr-defined]
    )


def insert(db: Connection, pool: StoredPool) -> None:
    db.execute(
        TABLE.insert().values(
            name=pool.name,
            workflow_id=pool.workflow_id,
            node_id=pool.node_id,
            version_id=pool.version_id,
            config_json=json.dumps(pool.config.to_json(), sort_keys=True),
            created_at=pool.created_at,
            updated_at=pool.updated_at,
        )
    )


def set_config(db: Connection, name: str, config: PoolConfig, now: float) -> None:
    db.execute(
        update(TABLE)
        .where(TABLE.c.name == name)
        .values(config_json=json.dumps(config.to_json(), sort_keys=True), updated_at=now)
    )


def remove(db: Connection, name: str) -> None:
    db.execute(delete(TABLE).where(TABLE.c.name == name))


def all_pools(db: Connection) -> list[StoredPool]:
    return [_stored(row) for row in db.execute(select(TABLE).order_by(TABLE.c.name))]
