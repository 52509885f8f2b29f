"""Reading a process service's log as the shim writes it: ``service.log`` and its rotated copies
(``.1`` newest … ``.N`` oldest), each line ``<epoch ms> <o|e> <text>``.

``tail`` keeps the last lines of all the copies together, ``since`` drops older lines (by each
line's own time), and ``follow`` goes on reading what is written after, across rotations
(the file is renamed away and a new one begins: the reader notices the inode change, finishes
the old file and starts the new one from its start).
"""

from __future__ import annotations

import asyncio
import collections
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from envplane.services.service.runtime import LogLine

FOLLOW_POLL = 0.1  # seconds between looks at a followed file
_STREAMS = {"o": "stdout", "e": "stderr"}


def parse(raw: bytes) -> LogLine | None:
    stamp, _, rest = raw.rstrip(b"\n").partition(b" ")
    tag, _, text = rest.partition(b" ")
    if not stamp.isdigit() or tag.decode(errors="replace") not in _STREAMS:
        return None
    return LogLine(int(stamp) / 1000, _STREAMS[tag.decode()], text.decode(errors="replace"))


def _copies(path: Path) -> list[Path]:
    """Oldest first: service.log.N … service.log.1, then service.log."""
    rotated = sorted(
        (p for p in path.parent.glob(path.name + ".*") if p.suffix[1:].isdigit()),
        key=lambda p: int(p.suffix[1:]),
        reverse=True,
    )
    return [*rotated, path]


def _parse_all(data: bytes, since: float) -> Iterator[LogLine]:
    for raw in data.splitlines():
        line = parse(raw)
        if line is not None and line.timestamp >= since:
            yield line


def backlog(path: Path, *, tail: int, since: float) -> tuple[list[LogLine], int, int]:
    """What is there now: the last ``tail`` lines (0: all) at or after ``since``, and where
    they end (the current file's inode, and the offset after its last whole line), so a
    follower goes on from exactly there. The current file is opened first: a rotation while
    the copies are read cannot make a line appear twice (a copy that is that file is skipped)."""
    lines: collections.deque[LogLine] = collections.deque(maxlen=tail if tail > 0 else None)
    try:
        current = open(path, "rb")  # noqa: SIM115 (closed below, after the copies are read)
    except FileNotFoundError:
        current = None
    try:
        inode = os.fstat(current.fileno()).st_ino if current else 0
        for copy in _copies(path)[:-1]:
            try:
                with open(copy, "rb") as f:
                    if os.fstat(f.fileno()).st_ino != inode:
                        lines.extend(_parse_all(f.read(), since))
            except FileNotFoundError:
                continue
        offset = 0
        if current is not None:
            data = current.read()
            offset = data.rfind(b"\n") + 1  # a line still being written is the follower's
            lines.extend(_parse_all(data[:offset], since))
        return list(lines), inode, offset
    finally:
        if current is not None:
            current.close()


async def read(path: Path, *, tail: int, since: float, follow: bool) -> AsyncIterator[LogLine]:
    lines, inode, offset = await asyncio.to_thread(backlog, path, tail=tail, since=since)
    for line in lines:
        yield line
    if not follow:
        return
    partial = b""
    while True:
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            await asyncio.sleep(FOLLOW_POLL)
            continue
        if stat.st_ino != inode:  # rotated: finish the old copy (now .1), then the new file from 0
            old = path.with_name(path.name + ".1")
            if inode and old.exists() and os.stat(old).st_ino == inode:
                data = _read_from(old, offset)
                for line in _split(partial + data)[0]:
                    yield line
            inode, offset, partial = stat.st_ino, 0, b""
            continue
        if stat.st_size > offset:
            data = _read_from(path, offset)
            offset += len(data)
            lines, partial = _split(partial + data)
            for line in lines:
                yield line
        else:
            await asyncio.sleep(FOLLOW_POLL)


def _read_from(path: Path, offset: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read()


def _split(data: bytes) -> tuple[list[LogLine], bytes]:
    *complete, rest = data.split(b"\n")
    return [line for raw in complete if (line := parse(raw)) is not None], rest
