# Generated from client/_async/transport.py by scripts/unasync.py (make client): DO NOT EDIT.
"""One channel per client: every call goes through :meth:`Transport.call` (retries,
deadline, token) or :meth:`Transport.stream` (token, deadline), which translate failures
into ``envplane.errors`` exceptions."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import grpc
from google.protobuf.message import Message

from envplane.client._errors import translate
from envplane.client.connection import CHANNEL_OPTIONS, auth_metadata, default_address, default_token
from envplane.client.retry import Attempts, RetryPolicy


class Transport:
    def __init__(self, address: str | None, *, timeout: float | None, retry: RetryPolicy, token: str | None) -> None:
        self.address = address or default_address()
        self.timeout = timeout
        self.retry = retry
        self.metadata = auth_metadata(token if token is not None else default_token())
        self.channel = grpc.insecure_channel(self.address, options=CHANNEL_OPTIONS)

    def call(self, method: Callable[..., Any], request: Message, timeout: float | None) -> Any:
        """A unary call: retried while the daemon is UNAVAILABLE (per the policy), never past
        the deadline (``timeout``, else the client's)."""
        attempts = Attempts(self.retry, timeout or self.timeout, self.address)
        while True:
            try:
                return method(request, timeout=attempts.remaining(), metadata=self.metadata)
            except grpc.RpcError as exc:
                delay = attempts.failed(exc)
            time.sleep(delay)

    def stream(
        self, method: Callable[..., Any], request: Message | Iterable[Message], timeout: float | None
    ) -> Iterator[Any]:
        """A server-streaming call (or a bidirectional one, given the requests); leaving the
        loop early cancels it."""
        call = method(request, timeout=timeout or self.timeout, metadata=self.metadata)
        try:
            for item in call:
                yield item
        except grpc.RpcError as exc:
            raise translate(exc, self.address) from exc
        finally:
            call.cancel()

    def close(self) -> None:
        self.channel.close()
