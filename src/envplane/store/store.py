"""The :class:`Store`: owns the engine and runs a function inside one transaction on a worker
thread, so an operation's state change, its audit record and its events commit together.

Queries are SQLAlchemy Core statements on a ``Connection``; the ones on the hot path (a create
runs about ten) are built once, at import, and executed with parameters: building a statement
per call costs ~100 µs in SQLAlchemy, executing a built one ~25 µs (measured on SQLite).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection, Engine

from envplane.store.engine import make_engine
from envplane.store.migrate import upgrade

T = TypeVar("T")


class Store:
    """``Store(url)`` opens the database and brings its schema to the newest revision."""

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        self.engine: Engine = make_engine(url)
        if migrate:
            upgrade(self.engine)

    def run_sync(self, fn: Callable[[Connection], T]) -> T:
        with self.engine.begin() as connection:
            return fn(connection)

    async def run(self, fn: Callable[[Connection], T]) -> T:
        return await asyncio.to_thread(self.run_sync, fn)

    def close(self) -> None:
        self.engine.dispose()
