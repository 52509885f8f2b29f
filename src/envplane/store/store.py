"""The :class:`Store`: owns the engine and runs a function inside one transaction on a worker
thread, so an operation's state change, its audit record and its events commit together."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

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
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def run_sync(self, fn: Callable[[Session], T]) -> T:
        with self._sessions.begin() as session:
            return fn(session)

    async def run(self, fn: Callable[[Session], T]) -> T:
        return await asyncio.to_thread(self.run_sync, fn)

    def close(self) -> None:
        self.engine.dispose()
