"""The one exception tree of envplane. Every face (gRPC, REST, client, CLI) maps these.

::

    EnvplaneError
    ├── InvalidArgument          bad input: ids, package specs, page tokens      gRPC INVALID_ARGUMENT   HTTP 422
    │   └── ResolutionFailed     uv could not resolve the requested packages     gRPC INVALID_ARGUMENT   HTTP 422
    ├── NotFound                 no such environment / dependency / operation    gRPC NOT_FOUND          HTTP 404
    ├── AlreadyExists            an environment with that identity exists        gRPC ALREADY_EXISTS     HTTP 409
    ├── FailedPrecondition       the env is in the wrong state for the operation gRPC FAILED_PRECONDITION HTTP 409
    │   ├── EnvBusy              another operation holds the env (fail_if_busy)  gRPC FAILED_PRECONDITION HTTP 409
    │   ├── RayNotReady          Ray cannot start workers in the env (providers) client side only
    │   ├── PoolFailed           no worker of a pool could start                 gRPC FAILED_PRECONDITION HTTP 409
    │   ├── SessionLost          the worker holding a session's state is gone    gRPC FAILED_PRECONDITION HTTP 409
    │   └── ServiceFailed        a service did not start or get healthy in time  gRPC FAILED_PRECONDITION HTTP 409
    ├── ResourceExhausted        a pool's queue or session table is full         gRPC RESOURCE_EXHAUSTED HTTP 429
    ├── Aborted                  the call was cut off; retrying can succeed      gRPC ABORTED            HTTP 409
    │   └── WatcherOverflow      an event watcher fell too far behind            gRPC ABORTED            HTTP 409
    ├── OutOfRange               a position the server no longer keeps           gRPC OUT_OF_RANGE       HTTP 410
    │   └── EventsPruned         resuming after an event cursor retention pruned gRPC OUT_OF_RANGE       HTTP 410
    ├── DeadlineExceeded         the request's deadline passed while waiting     gRPC DEADLINE_EXCEEDED  HTTP 504
    ├── Unauthenticated          the daemon wants a token the call did not carry gRPC UNAUTHENTICATED    HTTP 401
    ├── Unavailable              the daemon cannot be reached (client side)      gRPC UNAVAILABLE        HTTP 503
    │   ├── WorkerCrashed        the worker running the call died (exit/signal)  gRPC UNAVAILABLE        HTTP 503
    │   │   └── WorkerOutOfMemory  ... past its memory limit                     gRPC UNAVAILABLE        HTTP 503
    │   └── EngineUnavailable    the Docker engine cannot be reached             gRPC UNAVAILABLE        HTTP 503
    ├── Unimplemented            the operation is switched off on this daemon    gRPC UNIMPLEMENTED      HTTP 501
    ├── InternalError            uv failed to install, disk errors, bugs         gRPC INTERNAL           HTTP 500
    └── CommandError             a worker's handler raised (type, traceback)     gRPC UNKNOWN            HTTP 500

``CommandError`` is the user's code failing, not envplane: the worker faces carry it inside
their replies (typed), so it becomes a status only where a face has no other way to say it.

The per-transport tables live in ``api/grpc_errors.py``, ``api/rest_errors.py`` and
``client/_errors.py``: one table each, so a failure is the same status on every face.
"""

from __future__ import annotations


class EnvplaneError(Exception):
    """Base class. ``message`` is shown to users verbatim: it must name the problem.

    ``detail`` keeps long tool output (uv's stderr) apart so the headline stays readable;
    ``operation_id`` names the audit record of the failed operation, when there is one (the
    record keeps the whole output when a transport had to cut ``detail``)."""

    def __init__(self, message: str, *, detail: str = "", operation_id: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail
        self.operation_id = operation_id

    def __str__(self) -> str:
        if self.detail:
            return f"{self.message}\n{self.detail}"
        return self.message


class InvalidArgument(EnvplaneError):
    """The request itself is wrong, whatever the state of the system."""


class ResolutionFailed(InvalidArgument):
    """uv could not find versions satisfying the requested packages; ``detail`` is uv's text."""


class NotFound(EnvplaneError):
    """The named environment (or dependency, or operation) does not exist."""


class AlreadyExists(EnvplaneError):
    """Creating something that is already there."""


class FailedPrecondition(EnvplaneError):
    """The environment is not in a state that allows the operation."""


class EnvBusy(FailedPrecondition):
    """Another operation holds the environment and the caller asked not to wait."""


class RayNotReady(FailedPrecondition):
    """The env cannot host Ray workers: no ray, another ray version, or another Python minor."""


class PoolFailed(FailedPrecondition):
    """No worker of the pool got ready: ``detail`` has the last one's stderr and exit."""


class SessionLost(FailedPrecondition):
    """The worker that held the session's state died; the state is gone with it (never moved)."""


class ServiceFailed(FailedPrecondition):
    """A service could not start, or did not get healthy in time: ``detail`` has what its
    probe saw last, or the end of its log."""


class ResourceExhausted(EnvplaneError):
    """A bounded resource is full (a pool's queue, its sessions): try later, or grow it."""


class Aborted(EnvplaneError):
    """The server cut the call off; the same call again (resumed) can succeed."""


class WatcherOverflow(Aborted):
    """An event watcher fell too far behind the live stream; resume from the last cursor it got."""


class OutOfRange(EnvplaneError):
    """A position (cursor, offset) the server does not keep any more."""


class EventsPruned(OutOfRange):
    """Events after the requested cursor were pruned by retention: replaying would leave a gap."""


class DeadlineExceeded(EnvplaneError):
    """The caller's deadline passed (waiting for the env lock, or for uv)."""


class Unauthenticated(EnvplaneError):
    """The daemon requires a bearer token (ENVPLANE_AUTH_TOKEN) and the call had none or another."""


class Unavailable(EnvplaneError):
    """The daemon could not be reached."""


class WorkerCrashed(Unavailable):
    """The worker running the call exited or was killed before answering; ``cause`` says how
    (``exited with code 3``, ``killed by SIGSEGV``)."""

    def __init__(self, message: str, *, cause: str = "", detail: str = "", operation_id: int = 0) -> None:
        super().__init__(message, detail=detail, operation_id=operation_id)
        self.cause = cause


class WorkerOutOfMemory(WorkerCrashed):
    """The worker passed its memory limit during the call and was killed."""

    def __init__(
        self, message: str, *, peak_rss: int = 0, limit: int = 0, detail: str = "", operation_id: int = 0
    ) -> None:
        super().__init__(message, cause="out of memory", detail=detail, operation_id=operation_id)
        self.peak_rss = peak_rss
        self.limit = limit


class EngineUnavailable(Unavailable):
    """The container engine (dockerd) cannot be reached: it is not running, or the socket is wrong."""


class Unimplemented(EnvplaneError):
    """The daemon does not offer this operation (a setting switched it off)."""


class InternalError(EnvplaneError):
    """Anything the caller cannot fix by changing the request: uv install failures, I/O errors."""


def echo(value: object, limit: int = 80) -> str:
    """``repr(value)`` for an error message, cut to ``limit`` characters: messages name the bad
    input, but a 100 KB page token must not become a 100 KB message."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[: limit - 12]}…({len(text)} chars)"


class CommandError(EnvplaneError):
    """The handler's command raised. ``error_type`` is the exception's class name (qualified by
    ``error_module``), ``error_message`` its own text, ``traceback`` the worker's formatted
    traceback; ``message`` is the headline, ``"<command> raised <type>: <text>"``."""

    def __init__(
        self,
        message: str,
        *,
        error_type: str = "",
        error_module: str = "",
        error_message: str = "",
        traceback: str = "",
        detail: str = "",
        operation_id: int = 0,
    ) -> None:
        super().__init__(message, detail=detail or traceback, operation_id=operation_id)
        self.error_type = error_type
        self.error_module = error_module
        self.error_message = error_message or message
        self.traceback = traceback or detail

    @classmethod
    def raised(cls, command: str, error_type: str, text: str, *, module: str = "", traceback: str = "") -> CommandError:
        """The one headline for a command's exception, wherever it was raised (a pool worker, a
        Ray actor) and wherever it is read (the daemon, a client)."""
        return cls(
            f"{command} raised {error_type}: {text}",
            error_type=error_type,
            error_module=module,
            error_message=text,
            traceback=traceback,
        )
