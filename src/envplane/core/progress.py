"""Progress of a long operation, streamed to the caller as it happens (a streamed create, the
CLI's live output). The service reports through a callback; ``api/progress_stream.py`` turns
the callback into the stream both faces serve."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    """One step. A stream always ends with one ``done`` step, sent with the call's result."""

    phase: str  # environments: validate | resolve | uv (one line of uv's output) | install | done
    message: str


ProgressCallback = Callable[[Progress], Awaitable[None]]


async def no_progress(_: Progress) -> None:
    """The callback of a caller that does not stream."""
    return None
