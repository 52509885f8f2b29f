"""Environment identity: ``(workflow_id, node_id, version_id?)``, validated so it can name folders.

An id starts with a letter or digit and continues with letters, digits, ``.``, ``_`` or ``-``
(at most 128 characters). That excludes ``.``/``..``, separators and hidden names, so an id
can never point outside the data directory. An empty ``version_id`` means "no version" and is
stored under the folder ``_``, a name no valid id can take.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from envplane.errors import InvalidArgument

_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
NO_VERSION_FOLDER = "_"


def validate_id(field: str, value: str, *, required: bool = True) -> str:
    """Return ``value`` if it is a valid id, else raise ``InvalidArgument`` naming ``field``."""
    if not value:
        if required:
            raise InvalidArgument(f"{field} is required")
        return value
    if len(value) > 128:
        raise InvalidArgument(f"{field} is {len(value)} characters long; at most 128 are allowed")
    if not _ID_PATTERN.fullmatch(value):
        raise InvalidArgument(
            f"{field} {value!r} is not a valid id: use letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


class _HasIdentity(Protocol):
    @property
    def workflow_id(self) -> str: ...
    @property
    def node_id(self) -> str: ...
    @property
    def version_id(self) -> str: ...


@dataclass(frozen=True, order=True)
class EnvId:
    """The identity of one environment. Construct through :meth:`parse` to validate."""

    workflow_id: str
    node_id: str
    version_id: str = ""

    @classmethod
    def parse(cls, workflow_id: str, node_id: str, version_id: str = "") -> EnvId:
        return cls(
            validate_id("workflow_id", workflow_id),
            validate_id("node_id", node_id),
            validate_id("version_id", version_id or "", required=False),
        )

    @classmethod
    def of(cls, row: _HasIdentity) -> EnvId:
        """The id of a stored record (already validated when it was written)."""
        return cls(row.workflow_id, row.node_id, row.version_id)

    @property
    def key(self) -> tuple[str, str, str]:
        """The store's key for this env."""
        return (self.workflow_id, self.node_id, self.version_id)

    @property
    def folder_parts(self) -> tuple[str, str, str]:
        return (self.workflow_id, self.node_id, self.version_id or NO_VERSION_FOLDER)

    def __str__(self) -> str:
        base = f"{self.workflow_id}/{self.node_id}"
        return f"{base}@{self.version_id}" if self.version_id else base
