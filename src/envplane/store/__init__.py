"""Persistence: the engine, the declarative ``Base`` every table derives from, :class:`Store`
(one transaction on a worker thread) and the Alembic migrations the daemon applies at start.

Tables live with what owns them: the audit log and events in ``envplane.core``, environments
in ``envplane.environments.service.tables``. The migration history is one line for all of them
(``store/migrations/versions``).
"""

from envplane.store.base import Base
from envplane.store.store import Store

__all__ = ["Base", "Store"]
