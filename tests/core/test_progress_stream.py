"""The hand-off from a service call's progress callback to the stream both faces serve."""

from __future__ import annotations

import asyncio

import pytest

from envplane.api.progress_stream import Finished, progress_stream
from envplane.core.progress import Progress, ProgressCallback
from envplane.errors import ResolutionFailed


async def test_items_in_order_then_the_result_with_the_calls_done_message() -> None:
    async def call(report: ProgressCallback) -> str:
        for i in range(3):
            await report(Progress("step", str(i)))
        await report(Progress("done", "all good"))
        return "result"

    items = [item async for item in progress_stream(call)]
    assert [i.message for i in items[:-1]] == ["0", "1", "2"]  # type: ignore[union-attr]
    last = items[-1]
    assert isinstance(last, Finished) and last.result == "result" and last.progress.message == "all good"


async def test_the_calls_error_comes_out_of_the_stream_after_its_progress() -> None:
    async def call(report: ProgressCallback) -> str:
        await report(Progress("resolve", "trying"))
        raise ResolutionFailed("no version of nothing")

    seen: list[str] = []
    with pytest.raises(ResolutionFailed, match="no version of nothing"):
        async for item in progress_stream(call):
            seen.append(item.message)  # type: ignore[union-attr]
    assert seen == ["trying"]


async def test_closing_the_stream_early_cancels_the_call_and_waits_for_it() -> None:
    states: list[str] = []

    async def call(report: ProgressCallback) -> str:
        await report(Progress("start", "started"))
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            await asyncio.sleep(0.05)  # cleanup that takes a moment (killing uv, say)
            states.append("cleaned up")
            raise
        return "never"

    stream = progress_stream(call)
    first = await anext(stream)
    assert first.message == "started"  # type: ignore[union-attr]
    await stream.aclose()
    assert states == ["cleaned up"], "aclose returned only after the call had finished its cleanup"
