"""Pools of long-lived Python workers inside an environment.

In-process (no daemon), for scripts and notebooks::

    from envplane.workers import Pool, PoolConfig

    async with Pool(PoolConfig("handlers.py", min_size=2), python="/path/to/env/bin/python") as pool:
        await pool.execute("echo", {"text": "hi"})
        async for chunk in pool.execute_stream("count", {"n": 3}):
            print(chunk)

Through the daemon: ``EnvplaneClient().workers`` or ``envplane pool …``.

The slice, top to bottom: ``capability.py``, ``faces/`` (gRPC servicer, REST router),
``handlers.py``, ``messages.py``, ``service/`` (the pool engine, the worker bootstrap, the
daemon's stored pools). Names here are imported on first use, so a client that only needs the
value codec (``service/bootstrap.py``, stdlib only) loads nothing else.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from envplane.workers.service.channel import Pickled
    from envplane.workers.service.config import PoolConfig
    from envplane.workers.service.pool import Pool
    from envplane.workers.service.views import PoolInfo, PoolState, WorkerInfo

__all__ = ["Pickled", "Pool", "PoolConfig", "PoolInfo", "PoolState", "WorkerInfo"]

_LAZY = {
    "Pool": "envplane.workers.service.pool",
    "PoolConfig": "envplane.workers.service.config",
    "PoolInfo": "envplane.workers.service.views",
    "PoolState": "envplane.workers.service.views",
    "WorkerInfo": "envplane.workers.service.views",
    "Pickled": "envplane.workers.service.channel",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'envplane.workers' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
