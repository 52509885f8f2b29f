"""Tables. Times are UNIX seconds (float) so SQLite and PostgreSQL store them the same way."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Float, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class EnvironmentRow(Base):
    """The committed state of one environment. Disk is re-derived from this row at start-up."""

    __tablename__ = "environments"
    __table_args__ = (UniqueConstraint("workflow_id", "node_id", "version_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    workflow_id: Mapped[str] = mapped_column(String(128))
    node_id: Mapped[str] = mapped_column(String(128))
    version_id: Mapped[str] = mapped_column(String(128), default="")
    status: Mapped[str] = mapped_column(String(16))
    python_request: Mapped[str] = mapped_column(String(64), default="")
    python_version: Mapped[str] = mapped_column(String(64), default="")
    interpreter: Mapped[str] = mapped_column(Text, default="")
    build_id: Mapped[str] = mapped_column(String(64), default="")
    pyproject_toml: Mapped[str] = mapped_column(Text, default="")
    uv_lock: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    last_used_at: Mapped[float] = mapped_column(Float)


class ResolutionRow(Base):
    """A lock already produced for a canonical spec: identical specs skip resolution."""

    __tablename__ = "resolutions"

    spec_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    pyproject_toml: Mapped[str] = mapped_column(Text)
    uv_lock: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)


class OperationRow(Base):
    """The audit log: one row per operation, written RUNNING first and finished later."""

    __tablename__ = "operations"
    __table_args__ = (Index("ix_operations_env", "workflow_id", "node_id", "version_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
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


class EventRow(Base):
    """Domain events; ``id`` is the cursor WatchEvents resumes from."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    type: Mapped[str] = mapped_column(String(64))
    workflow_id: Mapped[str] = mapped_column(String(128), default="")
    node_id: Mapped[str] = mapped_column(String(128), default="")
    version_id: Mapped[str] = mapped_column(String(128), default="")
    occurred_at: Mapped[float] = mapped_column(Float)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
