"""Pools of long-lived Python workers inside an environment.

In-process (no daemon), for scripts and notebooks::

    from envplane.workers import Pool, PoolConfig

    async with Pool(PoolConfig("handlers.py", min_size=2), python="/path/to/env/bin/python") as pool:
        await pool.execute("echo", {"text": "hi"})
        async for chunk in pool.execute_stream("count", {"n": 3}):
            print(chunk)

Through the daemon: ``EnvplaneClient().workers`` or ``envplane pool …``.
"""

from envplane.workers.service.config import PoolConfig
from envplane.workers.service.pool import Pool
from envplane.workers.service.views import PoolInfo, PoolState, WorkerInfo

__all__ = ["Pool", "PoolConfig", "PoolInfo", "PoolState", "WorkerInfo"]
