# Generated from client/_async/activity.py by scripts/unasync.py (make client): DO NOT EDIT.
"""``client.operations`` and ``client.events``: the audit log and the event stream of every
capability (``envplane.v1.OperationService``, ``envplane.v1.EventService``)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from envplane.client._sync.transport import Transport
from envplane.v1 import common_pb2, events_pb2, events_pb2_grpc, operations_pb2, operations_pb2_grpc


class Operations:
    def __init__(self, transport: Transport) -> None:
        self._t = transport
        self._stub = operations_pb2_grpc.OperationServiceStub(transport.channel)

    def list(
        self,
        *,
        kind: str = "",
        subject_id: str = "",
        workflow_id: str = "",
        node_id: str = "",
        operation: str = "",
        status: str = "",
        page_size: int = 0,
        page_token: str = "",
    ) -> operations_pb2.ListOperationsResponse:
        """A page of audit records, newest first."""
        request = operations_pb2.ListOperationsRequest(
            kind=kind,
            subject_id=subject_id,
            workflow_id=workflow_id,
            node_id=node_id,
            operation=operation,
            status=status.upper(),
            page_size=page_size,
            page_token=page_token,
        )
        result: operations_pb2.ListOperationsResponse = self._t.call(self._stub.ListOperations, request, None)
        return result

    def get(self, operation_id: int) -> common_pb2.Operation:
        """One audit record with its whole output (what a failed call's ``operation_id`` names)."""
        request = operations_pb2.GetOperationRequest(id=operation_id)
        result: common_pb2.Operation = self._t.call(self._stub.GetOperation, request, None)
        return result

    def delete(
        self, *, kind: str = "", workflow_id: str = "", node_id: str = "", before: float = 0.0
    ) -> operations_pb2.DeleteOperationsResponse:
        """Delete finished records (records of running operations are kept)."""
        request = operations_pb2.DeleteOperationsRequest(
            kind=kind, workflow_id=workflow_id, node_id=node_id, before=before
        )
        result: operations_pb2.DeleteOperationsResponse = self._t.call(self._stub.DeleteOperations, request, None)
        return result


class Events:
    def __init__(self, transport: Transport) -> None:
        self._t = transport
        self._stub = events_pb2_grpc.EventServiceStub(transport.channel)

    def watch(
        self,
        after_cursor: int = 0,
        *,
        types: Sequence[str] = (),
        kinds: Sequence[str] = (),
        follow: bool = True,
        timeout: float | None = None,
    ) -> Iterator[events_pb2.Event]:
        """Events after ``after_cursor`` (0 = the oldest kept); with ``follow``, live ones too.
        Resume from the last ``cursor`` you saw: nothing is lost or repeated."""
        request = events_pb2.WatchEventsRequest(
            after_cursor=after_cursor, types=list(types), kinds=list(kinds), follow=follow
        )
        return self._t.stream(self._stub.WatchEvents, request, timeout)
