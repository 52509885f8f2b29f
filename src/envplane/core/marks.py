"""How far retention has pruned each table: a resumed event watch must know whether the events
after its cursor still exist, and ids must never be mistaken for ones that were never written."""

from __future__ import annotations

import time
from typing import cast

from sqlalchemy import Connection, Float, Integer, String, Table, bindparam, insert, select, update
from sqlalchemy.orm import Mapped, mapped_column

from envplane.store import Base


class RetentionMarkRow(Base):
    __tablename__ = "retention_marks"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)  # the table's name
    pruned_through: Mapped[int] = mapped_column(Integer)  # the highest id retention removed
    pruned_at: Mapped[float] = mapped_column(Float)


MARKS = cast(Table, RetentionMarkRow.__table__)  # the declarative model's table
_GET = select(MARKS.c.pruned_through).where(MARKS.c.name == bindparam("mark"))


def pruned_through(db: Connection, name: str) -> int:
    return int(db.scalar(_GET, {"mark": name}) or 0)


def advance(db: Connection, name: str, through: int) -> None:
    now = time.time()
    moved = db.execute(
        update(MARKS)
        .where(MARKS.c.name == name, MARKS.c.pruned_through < through)
        .values(pruned_through=through, pruned_at=now)
    )
    if not moved.rowcount and db.scalar(_GET, {"mark": name}) is None:
        db.execute(insert(MARKS).values(name=name, pruned_through=through, pruned_at=now))
