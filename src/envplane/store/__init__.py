"""Persistence: SQLAlchemy models, plain records and the queries over them."""

from envplane.store.records import EnvRecord, EventRecord, OperationRecord
from envplane.store.repository import Store

__all__ = ["EnvRecord", "EventRecord", "OperationRecord", "Store"]
