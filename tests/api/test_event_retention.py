"""A resumed watch whose cursor retention pruned is a clear error on both faces: OUT_OF_RANGE /
HTTP 410, naming the oldest cursor kept, never a silent gap."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from envplane import errors
from envplane.client import EnvplaneClient
from tests.support.daemons import ThreadDaemon
from tests.support.settings import offline_settings


@pytest.fixture
def short_memory(tmp_path: Path, wheelhouse: Path, uv_cache: Path) -> Iterator[ThreadDaemon]:
    settings = offline_settings(tmp_path / "data", [wheelhouse], uv_cache, events_keep_count=2, events_keep_days=0)
    daemon = ThreadDaemon(settings).start()
    yield daemon
    daemon.stop()


def test_resuming_after_pruned_events_names_the_oldest_kept(short_memory: ThreadDaemon, wf: str) -> None:
    with EnvplaneClient(short_memory.grpc_addr, timeout=60) as client:
        for node in ("a", "b"):
            client.environments.create(wf, node, packages=["alpha"])
        cursors = [e.cursor for e in client.events.watch(follow=False)]
        assert len(cursors) == 4
        assert short_memory.loop is not None and short_memory.daemon is not None
        prune = short_memory.daemon.core.retention.prune()
        asyncio.run_coroutine_threadsafe(prune, short_memory.loop).result(30)
        with pytest.raises(errors.EventsPruned) as info:
            list(client.events.watch(cursors[0], follow=False))
        assert info.value.__cause__.code() == grpc.StatusCode.OUT_OF_RANGE  # type: ignore[union-attr]
        assert f"the oldest event still kept is cursor {cursors[2]}" in info.value.message
        assert [e.cursor for e in client.events.watch(0, follow=False)] == cursors[2:]
    response = httpx.get(
        f"{short_memory.http_url}/v1/events", params={"follow": "false"}, headers={"Last-Event-ID": str(cursors[0])}
    )
    assert response.status_code == 410
    assert response.json()["error"]["code"] == "OUT_OF_RANGE"
