"""What crosses a worker's channel, seen from the parent: calls in flight, the handshake, the
replies parser, and what a reply frame means (a value, a pickle passed through, an error).

``worker.py`` keeps the process and the bookkeeping of its calls; this module only turns
bytes and messages into values, so both transports (the pipe, and grpc's response frames)
share it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from envplane.errors import CommandError
from envplane.workers.service import bootstrap


@dataclass
class Call:
    id: int
    command: str
    session: str | None
    started: float
    future: asyncio.Future[Any] | None = None  # unary calls
    chunks: asyncio.Queue[Any] | None = None  # streams: values, then END or an exception
    consumed: int = 0
    abandoned: bool = False


END = object()


@dataclass
class Ready:
    """The worker's handshake."""

    pid: int
    python: str
    executable: str
    commands: dict[str, dict[str, Any]] = field(default_factory=dict)


class Replies(asyncio.Protocol):
    """Frames from the worker, parsed as they arrive and handed to ``on_message`` (its exit is
    reported by the process watcher, not by the pipe closing)."""

    def __init__(self, on_message: Callable[[dict[str, Any]], None]) -> None:
        self.on_message = on_message
        self.buffer = bytearray()

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        header = bootstrap.HEADER
        offset = 0
        while len(buffer) - offset >= header.size:
            size, codec = header.unpack_from(buffer, offset)
            end = offset + header.size + size
            if len(buffer) < end:
                break
            payload = bytes(buffer[offset + header.size : end])
            offset = end
            self.on_message(bootstrap.decode(codec, payload))
        if offset:
            del buffer[:offset]


@dataclass(frozen=True)
class Pickled:
    """A value as pickle bytes, passed through unopened: the daemon never unpickles (only the
    in-process API, in the caller's own process, and the caller's client do)."""

    data: bytes


def value_of(message: dict[str, Any]) -> Any:
    return Pickled(message["value_pickle"]) if "value_pickle" in message else message.get("value")


def unframe(frame: bytes) -> dict[str, Any]:
    _, codec = bootstrap.HEADER.unpack_from(frame)
    return bootstrap.decode(codec, frame[bootstrap.HEADER.size :])


def command_error(error: Mapping[str, str], command: str) -> BaseException:
    kind = error.get("type", "Exception")
    if kind == "CallCancelled":
        return asyncio.CancelledError()
    return CommandError.raised(
        command, kind, error.get("message", ""), module=error.get("module", ""), traceback=error.get("traceback", "")
    )
