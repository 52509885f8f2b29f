"""The domain events of the workers capability (subject kind ``pool``).

Pool lifecycle and worker restarts are evented; single calls are not (they are counted in the
metrics): a pool serving thousands of calls a second must not flood the event log.
"""

from __future__ import annotations

from enum import StrEnum

POOL = "pool"


class EventType(StrEnum):
    POOL_CREATED = "PoolCreated"
    POOL_READY = "PoolReady"
    POOL_FAILED = "PoolFailed"
    POOL_SCALED = "PoolScaled"
    POOL_DELETED = "PoolDeleted"
    WORKER_EXITED = "WorkerExited"
