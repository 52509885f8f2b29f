"""What an operation or an event is about: a kind of subject and its id.

Every capability audits and streams through the same two tables; the subject says whose row it
is (``environment`` today; ``pool``, ``service``, ``observation`` later). The workflow fields
say which workflow node the subject serves, when it has one, so ``envplane ops --workflow W``
finds a node's environment, pools and observations alike.

Both tables store a subject in the same five columns (:class:`SubjectColumns`), written from
:meth:`Subject.columns` and read back with :meth:`Subject.of_row`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

SUBJECT_COLUMNS = ("subject_kind", "subject_id", "workflow_id", "node_id", "version_id")


@dataclass(frozen=True)
class Subject:
    kind: str
    id: str = ""  # "" = the whole kind (environment cleanup)
    workflow_id: str = ""
    node_id: str = ""
    version_id: str = ""

    def columns(self) -> dict[str, str]:
        """The values of :data:`SUBJECT_COLUMNS` that store this subject."""
        return {
            "subject_kind": self.kind,
            "subject_id": self.id,
            "workflow_id": self.workflow_id,
            "node_id": self.node_id,
            "version_id": self.version_id,
        }

    @classmethod
    def of_row(cls, row: Any) -> Subject:
        """The subject a row of the audit log or of the events is about."""
        return cls(row.subject_kind, row.subject_id, row.workflow_id, row.node_id, row.version_id)


class SubjectColumns:
    """Declarative mixin: the columns of a table whose rows are about a subject."""

    subject_kind: Mapped[str] = mapped_column(String(32), default="")
    subject_id: Mapped[str] = mapped_column(String(256), default="")
    workflow_id: Mapped[str] = mapped_column(String(128), default="")
    node_id: Mapped[str] = mapped_column(String(128), default="")
    version_id: Mapped[str] = mapped_column(String(128), default="")
