"""How far retention has pruned each table: a resumed event watch must know whether the events
after its cursor still exist, and ids must never be mistaken for ones that were never written."""

from __future__ import annotations

import time

from sqlalchemy import Float, Integer, String
from sqlalchemy.orm import Mapped, Session, mapped_column

from envplane.store import Base


class RetentionMarkRow(Base):
    __tablename__ = "retention_marks"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)  # the table's name
    pruned_through: Mapped[int] = mapped_column(Integer)  # the highest id retention removed
    pruned_at: Mapped[float] = mapped_column(Float)


def pruned_through(session: Session, name: str) -> int:
    row = session.get(RetentionMarkRow, name)
    return row.pruned_through if row else 0


def advance(session: Session, name: str, through: int) -> None:
    row = session.get(RetentionMarkRow, name)
    if row is None:
        session.add(RetentionMarkRow(name=name, pruned_through=through, pruned_at=time.time()))
    elif through > row.pruned_through:
        row.pruned_through, row.pruned_at = through, time.time()
