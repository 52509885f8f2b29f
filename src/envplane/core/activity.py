"""The read side of the audit log and the event stream, for every capability's records:
listing, fetching and deleting audit records, and watching events (resumable).

Faces reach it as ``core.activity``: the ``activity`` slice serves it as OperationService and
EventService, and the UV Venv Manager face serves its own GetOperations/DeleteOperations from it.
Every argument is checked here, with a message naming the field.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import TYPE_CHECKING

from envplane.core import audit
from envplane.core.audit import OperationFilter, OperationRecord, OpStatus
from envplane.core.events import MAX_CURSOR, EventRecord
from envplane.core.pagination import Page, make_page, resolve_window
from envplane.errors import InvalidArgument, NotFound, echo

if TYPE_CHECKING:
    from envplane.core.capability import Core

ANY = OperationFilter()


def _known(field: str, what: str, values: Iterable[str], known: Iterable[str]) -> None:
    allowed = sorted(set(known))
    unknown = [v for v in values if v not in allowed]
    if unknown:
        shown = ", ".join(echo(v, 60) for v in unknown[:5])
        raise InvalidArgument(f"{field}: unknown {what}(s) {shown}; known: {', '.join(allowed)}")


def check_operation_id(value: int, field: str = "id") -> int:
    """An audit record's id: positive, and within what the database holds."""
    if not 0 < value <= MAX_CURSOR:
        raise InvalidArgument(f"{field} must be a positive operation id, got {value}")
    return value


def check_cursor(value: int, field: str = "after_cursor") -> int:
    """An event cursor to resume after: 0 (from the oldest kept) up to what the database holds."""
    if not 0 <= value <= MAX_CURSOR:
        raise InvalidArgument(f"{field} must be an event cursor between 0 and {MAX_CURSOR}, got {value}")
    return value


class Activity:
    """Queries over the core tables; one per core."""

    def __init__(self, core: Core) -> None:
        self._core = core

    async def operations(
        self, where: OperationFilter = ANY, *, page_size: int = 0, page_token: str = ""
    ) -> Page[OperationRecord]:
        if where.status and where.status not in OpStatus.__members__:
            raise InvalidArgument(f"status {echo(where.status)} is not one of {', '.join(OpStatus.__members__)}")
        if where.subject_id and not where.kind:
            raise InvalidArgument("subject_id needs kind (e.g. kind=environment)")
        settings = self._core.settings
        offset, limit = resolve_window(
            page_size, page_token, default=settings.default_page_size, maximum=settings.max_page_size
        )
        records, total = await self._core.store.run(
            lambda s: audit.list_operations(s, where, offset=offset, limit=limit)
        )
        return make_page(records, total, offset, limit)

    async def operation(self, op_id: int) -> OperationRecord:
        check_operation_id(op_id)
        record = await self._core.store.run(lambda s: audit.get(s, op_id))
        if record is None:
            raise NotFound(f"operation {op_id} does not exist (or retention has pruned it)")
        return record

    async def delete_operations(
        self, where: OperationFilter = ANY, *, before: float | None = None
    ) -> tuple[int, list[str]]:
        """Delete finished records matching ``where``; records of running operations are kept.
        Returns (how many, the distinct node ids whose records went)."""
        if before is not None and not (math.isfinite(before) and before >= 0):
            raise InvalidArgument(f"before must be UNIX seconds >= 0 (0 = any time), got {before}")
        count, nodes = await self._core.store.run(lambda s: audit.delete_operations(s, where, before=before))
        return count, [n for n in nodes if n]

    async def watch(
        self,
        after: int = 0,
        *,
        types: Sequence[str] = (),
        kinds: Sequence[str] = (),
        follow: bool = True,
        cursor_field: str = "after_cursor",
    ) -> AsyncIterator[EventRecord]:
        """Check the request (and that nothing after ``after`` was pruned), then return the
        event iterator: a face can answer a bad request with its status before it streams."""
        check_cursor(after, cursor_field)
        _known("types", "event type", types, self._core.event_types)
        _known("kinds", "subject kind", kinds, self._core.subject_kinds)
        await self._core.bus.check_resumable(after)
        return self._core.bus.watch(after, types=types, kinds=kinds, follow=follow)
