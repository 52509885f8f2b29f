"""Run a service call that reports progress, and hand its progress out as a stream.

Both faces stream a create the same way (gRPC server-streaming, REST NDJSON); this is the one
copy of the hand-off between the service's progress callback and the face's iterator.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from envplane.core.progress import Progress, ProgressCallback

T = TypeVar("T")


@dataclass(frozen=True)
class Finished(Generic[T]):
    """The last item of a stream: the call's own closing message and its result."""

    progress: Progress
    result: T


async def progress_stream(
    call: Callable[[ProgressCallback], Awaitable[T]],
) -> AsyncGenerator[Progress | Finished[T], None]:
    """Yield the call's progress items as they come, then a :class:`Finished` carrying the
    call's ``done`` message and its result. The call's error is raised
    from the iterator; closing the iterator early cancels the call and waits for it (it may
    own subprocesses)."""
    queue: asyncio.Queue[Progress] = asyncio.Queue()
    task = asyncio.ensure_future(call(queue.put))
    done = Progress("done", "finished")  # service calls send their own; this is a fallback
    try:
        while not task.done() or not queue.empty():
            getter = asyncio.ensure_future(queue.get())
            await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
            if not getter.done():
                getter.cancel()  # the call ended; whatever it queued is still in the queue
                continue
            item = getter.result()
            if item.phase == "done":
                done = item  # sent last, together with the result
            else:
                yield item
        yield Finished(done, task.result())
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
