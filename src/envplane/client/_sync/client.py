# Generated from client/_async/client.py by scripts/unasync.py (make client): DO NOT EDIT.
"""``EnvplaneClient``: one channel to the daemon, one namespace per capability."""

from __future__ import annotations

from envplane.client._sync.activity import Events, Operations
from envplane.client._sync.environments import Environments
from envplane.client._sync.observations import Observations
from envplane.client._sync.services import Services
from envplane.client._sync.transport import Transport
from envplane.client._sync.workers import Workers
from envplane.client.retry import NO_RETRY, RetryPolicy


class EnvplaneClient:
    """Typed access to the daemon over gRPC; failures raise ``envplane.errors`` exceptions.

    ``address`` defaults to ``ENVPLANE_GRPC_ADDR`` (else 127.0.0.1:50051) and ``token`` to
    ``ENVPLANE_AUTH_TOKEN`` / ``ENVPLANE_AUTH_TOKEN_FILE``: the settings the daemon reads.
    ``timeout`` (seconds) becomes each call's gRPC deadline; the daemon waits for a busy
    environment at most that long (``fail_if_busy=True`` fails at once instead). ``retry``
    retries unary calls that find the daemon UNAVAILABLE, within that deadline; by default a
    call fails at once (the CLI reports a stopped daemon immediately).
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        timeout: float | None = None,
        retry: RetryPolicy = NO_RETRY,
        token: str | None = None,
    ) -> None:
        self._transport = Transport(address, timeout=timeout, retry=retry, token=token)
        self.environments = Environments(self._transport)
        self.operations = Operations(self._transport)
        self.events = Events(self._transport)
        self.workers = Workers(self._transport)
        self.services = Services(self._transport)
        self.observations = Observations(self._transport)

    @property
    def address(self) -> str:
        return self._transport.address

    @property
    def timeout(self) -> float | None:
        return self._transport.timeout

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> EnvplaneClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
