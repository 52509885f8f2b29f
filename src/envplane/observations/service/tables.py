"""The observations capability's tables: every observation with the action it got, and how each
pipeline is decided.

An observation row is the record of one call (it is its own audit trail: the action, its reason
and evidence are stored with it); ``event_id`` is unique where given, so a sender's retry is
stored once. The evidence the daemon decides from is rebuilt from the completed rows at start.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from envplane.store import Base


class ObservationRow(Base):
    __tablename__ = "observations"
    __table_args__ = (Index("ix_observations_pipeline_process", "pipeline", "process", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str | None] = mapped_column(String(128), unique=True, nullable=True)
    pipeline: Mapped[str] = mapped_column(String(128))
    process: Mapped[str] = mapped_column(String(256))
    task_id: Mapped[str] = mapped_column(String(128))
    run: Mapped[str] = mapped_column(String(128))
    attempt: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    exit_code: Mapped[int] = mapped_column(Integer)
    requested_memory: Mapped[int] = mapped_column(BigInteger)
    requested_cpus: Mapped[float] = mapped_column(Float)
    requested_time_ms: Mapped[int] = mapped_column(BigInteger)
    realtime_ms: Mapped[int] = mapped_column(BigInteger)
    duration_ms: Mapped[int] = mapped_column(BigInteger)
    cpu_percent: Mapped[float] = mapped_column(Float)
    peak_rss: Mapped[int] = mapped_column(BigInteger)
    peak_vmem: Mapped[int] = mapped_column(BigInteger)
    read_bytes: Mapped[int] = mapped_column(BigInteger)
    write_bytes: Mapped[int] = mapped_column(BigInteger)
    input_bytes: Mapped[int] = mapped_column(BigInteger)
    error: Mapped[str] = mapped_column(Text)
    task_hash: Mapped[str] = mapped_column(String(64))
    task_name: Mapped[str] = mapped_column(String(512))
    submitted_at: Mapped[float] = mapped_column(Float)
    completed_at: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(16))
    action_kind: Mapped[str] = mapped_column(String(24))
    action_memory: Mapped[int] = mapped_column(BigInteger)
    action_id: Mapped[str] = mapped_column(String(36))
    action_json: Mapped[str] = mapped_column(Text)  # Decision.details()
    recorded_at: Mapped[float] = mapped_column(Float)


class PipelineRow(Base):
    __tablename__ = "observation_pipelines"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    policy: Mapped[str] = mapped_column(String(32))
    memory_cap: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[float] = mapped_column(Float)
