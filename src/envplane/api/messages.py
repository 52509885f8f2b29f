"""Core records -> the ``envplane.v1`` messages every capability shares (common.proto,
events.proto): an operation's audit record, an event, their subject."""

from __future__ import annotations

import json

from envplane.core.audit import OperationRecord
from envplane.core.events import EventRecord
from envplane.core.subject import Subject
from envplane.v1 import common_pb2, events_pb2


def subject(value: Subject) -> common_pb2.Subject:
    return common_pb2.Subject(
        kind=value.kind,
        id=value.id,
        workflow_id=value.workflow_id,
        node_id=value.node_id,
        version_id=value.version_id,
    )


def operation(op: OperationRecord) -> common_pb2.Operation:
    return common_pb2.Operation(
        id=op.id,
        subject=subject(op.subject),
        operation=op.operation,
        status=op.status,
        started_at=op.started_at,
        finished_at=op.finished_at or 0.0,
        duration_ms=op.duration_ms or 0,
        stdout=op.stdout,
        stderr=op.stderr,
        exit_code=op.exit_code or 0,
        error=op.error,
        metadata_json=json.dumps(op.details or {}, sort_keys=True),
    )


def event(record: EventRecord) -> events_pb2.Event:
    return events_pb2.Event(
        cursor=record.cursor,
        type=record.type,
        subject=subject(record.subject),
        occurred_at=record.occurred_at,
        payload_json=json.dumps(record.payload, sort_keys=True),
    )
