"""The workers capability's table: the pools declared on this daemon.

Only definitions are stored (workers are processes, re-created at start-up): after a restart,
every declared pool comes back with fresh workers, exactly as it was last defined.
"""

from __future__ import annotations

from sqlalchemy import Float, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from envplane.store import Base


class PoolRow(Base):
    __tablename__ = "worker_pools"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    workflow_id: Mapped[str] = mapped_column(String(128))
    node_id: Mapped[str] = mapped_column(String(128))
    version_id: Mapped[str] = mapped_column(String(128), default="")
    config_json: Mapped[str] = mapped_column(Text)  # PoolConfig.to_json()
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
