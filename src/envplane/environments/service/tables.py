"""The environments capability's tables. The row is the truth: disk is re-derived from it."""

from __future__ import annotations

from sqlalchemy import Float, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from envplane.store import Base


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
