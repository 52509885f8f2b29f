"""gRPC status -> envplane exception: the client-side table (inverse of api/grpc_errors.py)."""

from __future__ import annotations

import grpc

from envplane import errors
from envplane.api.grpc_errors import ERROR_CLASS_KEY, OPERATION_KEY  # the trailers the server sets

EXCEPTION_TABLE: dict[grpc.StatusCode, type[errors.EnvplaneError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: errors.InvalidArgument,
    grpc.StatusCode.NOT_FOUND: errors.NotFound,
    grpc.StatusCode.ALREADY_EXISTS: errors.AlreadyExists,
    grpc.StatusCode.FAILED_PRECONDITION: errors.FailedPrecondition,
    grpc.StatusCode.RESOURCE_EXHAUSTED: errors.ResourceExhausted,
    grpc.StatusCode.ABORTED: errors.Aborted,
    grpc.StatusCode.OUT_OF_RANGE: errors.OutOfRange,
    grpc.StatusCode.DEADLINE_EXCEEDED: errors.DeadlineExceeded,
    grpc.StatusCode.UNAUTHENTICATED: errors.Unauthenticated,
    grpc.StatusCode.UNAVAILABLE: errors.Unavailable,
    grpc.StatusCode.UNIMPLEMENTED: errors.Unimplemented,
    grpc.StatusCode.UNKNOWN: errors.CommandError,  # the daemon's own failures are INTERNAL
}


def answered_by_daemon(exc: grpc.RpcError) -> bool:
    """The status came from envplane itself (it names the error class), not from the channel."""
    trailing = dict(exc.trailing_metadata() or ()) if hasattr(exc, "trailing_metadata") else {}
    return ERROR_CLASS_KEY in trailing


def translate(exc: grpc.RpcError, address: str) -> errors.EnvplaneError:
    """Turn a failed call into the matching envplane exception (raise it ``from exc``)."""
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = (exc.details() if hasattr(exc, "details") else "") or str(exc)
    trailing = dict(exc.trailing_metadata() or ()) if hasattr(exc, "trailing_metadata") else {}
    if code == grpc.StatusCode.UNAVAILABLE and not answered_by_daemon(exc):
        return errors.Unavailable(
            f"cannot reach the envplane daemon at {address} (is `envplane serve` running? "
            f"ENVPLANE_GRPC_ADDR selects the address): {details}"
        )
    headline, _, detail = details.partition("\n")
    cls = EXCEPTION_TABLE.get(code, errors.InternalError)
    # The server names the exact class (EnvBusy, ResolutionFailed) in trailing metadata.
    exact = getattr(errors, str(trailing.get(ERROR_CLASS_KEY, "")), None)
    if isinstance(exact, type) and issubclass(exact, cls):
        cls = exact
    operation = str(trailing.get(OPERATION_KEY, ""))
    error = cls(headline, detail=detail, operation_id=int(operation) if operation.isdigit() else 0)
    error.grpc_code = code  # type: ignore[attr-defined]
    return error
