"""One way for a test to wait for something that happens in another thread or process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(check: Callable[[], T], *, timeout: float = 30.0, interval: float = 0.02, what: str = "") -> T:
    """Call ``check`` until it returns something true; return that. Past ``timeout``, fail
    naming ``what``. Exceptions from ``check`` count as "not yet" until then, except an
    AssertionError, which is a definite failure (a daemon that exited, say) and ends the wait."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            value = check()
            if value:
                return value
        except AssertionError:
            raise
        except Exception as exc:  # not ready yet (a file half-written, a daemon starting)
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:g} s waiting for {what or check}") from last
        time.sleep(interval)


async def eventually_async(
    check: Callable[[], Awaitable[T] | T], *, timeout: float = 30.0, interval: float = 0.01, what: str = ""
) -> T:
    """:func:`eventually` for a test on the event loop (``check`` may be a coroutine function)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:g} s waiting for {what or check}")
        await asyncio.sleep(interval)
