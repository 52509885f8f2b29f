"""``AsyncEnvplaneClient``: one channel to the daemon, one namespace per capability."""

from __future__ import annotations

from envplane.client._async.activity import AsyncEvents, AsyncOperations
from envplane.client._async.environments import AsyncEnvironments
from envplane.client._async.observations import AsyncObservations
from envplane.client._async.services import AsyncServices
from envplane.client._async.transport import AsyncTransport
from envplane.client._async.workers import AsyncWorkers
from envplane.client.retry import NO_RETRY, RetryPolicy


class AsyncEnvplaneClient:
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
        self._transport = AsyncTransport(address, timeout=timeout, retry=retry, token=token)
        self.environments = AsyncEnvironments(self._transport)
        self.operations = AsyncOperations(self._transport)
        self.events = AsyncEvents(self._transport)
        self.workers = AsyncWorkers(self._transport)
        self.services = AsyncServices(self._transport)
        self.observations = AsyncObservations(self._transport)

    @property
    def address(self) -> str:
        return self._transport.address

    @property
    def timeout(self) -> float | None:
        return self._transport.timeout

    async def close(self) -> None:
        await self._transport.close()

    async def __aenter__(self) -> AsyncEnvplaneClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()
