"""Reading a service's audit log and events the way the activity faces do (``core.activity``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from envplane.core.audit import OperationFilter, OperationRecord
from envplane.core.events import EventRecord
from envplane.core.pagination import Page
from envplane.environments import EnvironmentService


async def operations(
    service: EnvironmentService, *, page_size: int = 0, page_token: str = "", **where: Any
) -> Page[OperationRecord]:
    return await service.core.activity.operations(OperationFilter(**where), page_size=page_size, page_token=page_token)


async def watch(service: EnvironmentService, after: int = 0, **options: Any) -> AsyncIterator[EventRecord]:
    return await service.core.activity.watch(after, **options)
