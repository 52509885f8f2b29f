"""The Ray actor of :class:`~envplane.ray.pool.RayPool`, in a module of its own: it is shipped
to the env's interpreter by value (the env has ray, not envplane), so it imports only the
standard library, and builds its handler loader from ``bootstrap.py``'s source."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any


class HandlerActor:
    """Runs in the env's interpreter. Defined here, but built from ``bootstrap.py``'s source at
    start (``exec``), so nothing of envplane has to be importable where it runs."""

    def __init__(self, bootstrap: str, handler: str, source: str | None, init: str, init_args: Any) -> None:
        import asyncio

        namespace: dict[str, Any] = {"__name__": "envplane_bootstrap"}
        exec(compile(bootstrap, "envplane_bootstrap.py", "exec"), namespace)
        self._loop = asyncio.new_event_loop()
        self._handler = namespace["load_handler"](handler, init, init_args, lambda: self._loop, source)
        self._sessions: dict[str, dict[str, Any]] = {}
        self.incarnation = uuid.uuid4().hex  # a restart makes a new one: sessions know theirs died

    def hello(self) -> dict[str, Any]:
        import sys

        return {
            "commands": self._handler.describe(),
            "incarnation": self.incarnation,
            "pid": os.getpid(),
            "python": sys.executable,
        }

    def _prepare(self, command: str, args: Any, session: str | None) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
        fn = self._handler.commands[command]
        if isinstance(args, dict):
            positional: tuple[Any, ...] = ()
            keywords = dict(args)
        elif isinstance(args, (list, tuple)):
            positional, keywords = tuple(args), {}
        else:
            positional, keywords = (() if args is None else (args,)), {}
        if self._handler.wants_session[command]:
            keywords["session"] = self._sessions.setdefault(session, {}) if session else {}
        return fn, positional, keywords

    def call(self, command: str, args: Any, session: str | None) -> tuple[str, Any]:
        fn, positional, keywords = self._prepare(command, args, session)
        value = fn(*positional, **keywords)
        if self._handler.kinds[command] == "async":
            value = self._loop.run_until_complete(value)
        return self.incarnation, value

    def stream(self, command: str, args: Any, session: str | None) -> Iterator[Any]:
        fn, positional, keywords = self._prepare(command, args, session)
        iterator = fn(*positional, **keywords)
        if self._handler.kinds[command] == "generator":
            yield from iterator
            return
        while True:
            try:
                yield self._loop.run_until_complete(iterator.__anext__())
            except StopAsyncIteration:
                return

    def end_session(self, session: str) -> bool:
        return self._sessions.pop(session, None) is not None
