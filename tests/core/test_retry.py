"""RetryPolicy and the attempt loop both clients share: backoff, bounds, and giving up."""

from __future__ import annotations

import time

import grpc
import pytest

from envplane import errors
from envplane.client.retry import NO_RETRY, Attempts, RetryPolicy


class RpcErrorDouble(grpc.RpcError):
    """A failed call as grpcio reports it (the parts translate() reads): a stand-in, since a
    real one needs a call to fail; the daemon-level retries are tested against real daemons."""

    def __init__(self, code: grpc.StatusCode, details: str = "down") -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> tuple[()]:
        return ()


def test_backoff_grows_is_capped_and_jittered() -> None:
    policy = RetryPolicy(max_attempts=10, initial_backoff=0.1, max_backoff=0.5, multiplier=2)
    for attempt, ceiling in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.5), (8, 0.5)]:
        delays = [policy.delay_after(attempt) for _ in range(50)]
        assert all(d is not None and ceiling * 0.5 <= d <= ceiling for d in delays), (attempt, delays)
        assert len(set(delays)) > 1, "jittered"
    assert policy.delay_after(10) is None, "max_attempts counts the first call"


@pytest.mark.parametrize(
    "bad",
    [
        {"max_attempts": 0},
        {"initial_backoff": 0},
        {"initial_backoff": 2.0, "max_backoff": 1.0},
        {"multiplier": 0.5},
    ],
)
def test_nonsense_policies_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**bad)  # type: ignore[arg-type]


def test_only_unavailable_is_retried() -> None:
    attempts = Attempts(RetryPolicy(max_attempts=5), None, "127.0.0.1:1")
    attempts.remaining()
    assert attempts.failed(RpcErrorDouble(grpc.StatusCode.UNAVAILABLE)) > 0
    attempts.remaining()
    with pytest.raises(errors.NotFound):
        attempts.failed(RpcErrorDouble(grpc.StatusCode.NOT_FOUND, "environment wf/n does not exist"))


def test_the_deadline_covers_every_attempt_and_the_message_counts_them() -> None:
    attempts = Attempts(RetryPolicy(max_attempts=1000, initial_backoff=0.05, max_backoff=0.05), 0.3, "x:1")
    started = time.monotonic()
    with pytest.raises(errors.Unavailable, match=r"gave up after \d+ attempts"):
        while True:
            remaining = attempts.remaining()
            assert remaining is not None and remaining <= 0.3
            time.sleep(attempts.failed(RpcErrorDouble(grpc.StatusCode.UNAVAILABLE)))
    assert time.monotonic() - started < 0.3 + 0.05 + 0.5, "no sleep ran past the deadline"


def test_no_retry_fails_at_once_without_counting() -> None:
    attempts = Attempts(NO_RETRY, None, "x:1")
    attempts.remaining()
    with pytest.raises(errors.Unavailable) as info:
        attempts.failed(RpcErrorDouble(grpc.StatusCode.UNAVAILABLE))
    assert "attempts" not in info.value.message
