"""What an operation or an event is about: a kind of subject and its id.

Every capability audits and streams through the same two tables; the subject says whose row it
is (``environment`` today; ``pool``, ``service``, ``observation`` later). The workflow fields
say which workflow node the subject serves, when it has one, so ``envplane ops --workflow W``
finds a node's environment, pools and observations alike.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Subject:
    kind: str
    id: str = ""  # "" = the whole kind (environment cleanup)
    workflow_id: str = ""
    node_id: str = ""
    version_id: str = ""
