"""The blocking client is generated from the asyncio one: the committed twin must be fresh."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_sync_client_is_what_the_async_source_gives() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "unasync.py"), "--check"], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr


def test_both_clients_have_the_same_methods() -> None:
    from envplane.client import AsyncEnvplaneClient, EnvplaneClient

    for namespace in ("environments", "operations", "events"):
        sync_methods = {n for n in dir(getattr(EnvplaneClient("x:1"), namespace)) if not n.startswith("_")}
        async_client = AsyncEnvplaneClient.__new__(AsyncEnvplaneClient)
        del async_client
        from envplane.client._async import activity, environments

        async_class = {
            "environments": environments.AsyncEnvironments,
            "operations": activity.AsyncOperations,
            "events": activity.AsyncEvents,
        }[namespace]
        async_methods = {n for n in dir(async_class) if not n.startswith("_")}
        assert sync_methods == async_methods, namespace
