"""Retrying calls the daemon could not take: it is starting, restarting, or briefly unreachable.

Only UNAVAILABLE is retried: the request did not reach a running service, so trying again
cannot apply it twice. Every other status is an answer and is raised at once. The call's
deadline covers all attempts together.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import grpc

from envplane.client._errors import answered_by_daemon, translate


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter between attempts; ``max_attempts`` counts the first call."""

    max_attempts: int = 6
    initial_backoff: float = 0.1
    max_backoff: float = 2.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.initial_backoff <= 0 or self.max_backoff < self.initial_backoff or self.multiplier < 1:
            raise ValueError("backoff needs 0 < initial_backoff <= max_backoff and multiplier >= 1")

    def delay_after(self, attempt: int) -> float | None:
        """Seconds to wait after failed attempt number ``attempt`` (1-based); None: give up."""
        if attempt >= self.max_attempts:
            return None
        ceiling = min(self.max_backoff, self.initial_backoff * self.multiplier ** (attempt - 1))
        return ceiling * random.uniform(0.5, 1.0)


class Attempts:
    """The retry loop of one call, shared by the blocking and the asyncio client: call with
    ``timeout=attempts.remaining()``; on an RpcError, ``attempts.failed(exc)`` either returns
    the delay to sleep before the next attempt or raises the translated error."""

    def __init__(self, policy: RetryPolicy, budget: float | None, address: str) -> None:
        self.policy = policy
        self.deadline = None if budget is None else time.monotonic() + budget
        self.address = address
        self.attempt = 0

    def remaining(self) -> float | None:
        self.attempt += 1
        return None if self.deadline is None else max(self.deadline - time.monotonic(), 0.001)

    def failed(self, exc: grpc.RpcError) -> float:
        error = translate(exc, self.address)
        # UNAVAILABLE from the daemon itself (it names the error class: a worker crashed under
        # the call) is an answer, not an unreachable daemon: retrying could run the call twice.
        retryable = exc.code() == grpc.StatusCode.UNAVAILABLE and not answered_by_daemon(exc)
        delay = self.policy.delay_after(self.attempt) if retryable else None
        if delay is None or (self.deadline is not None and time.monotonic() + delay >= self.deadline):
            if self.attempt > 1:
                error.message += f" (gave up after {self.attempt} attempts)"
                error.args = (error.message,)
            raise error from exc
        return delay


NO_RETRY = RetryPolicy(max_attempts=1)
