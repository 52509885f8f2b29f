"""Typed Python clients for the envplane daemon (gRPC), blocking and asyncio: one channel each,
one namespace per capability.

>>> from envplane.client import EnvplaneClient
>>> with EnvplaneClient() as client:            # ENVPLANE_GRPC_ADDR or 127.0.0.1:50051
...     env = client.environments.create("ml_pipeline", "rag", packages=["httpx>=0.27"])
...     ops = client.operations.list(workflow_id="ml_pipeline")
...     for event in client.events.watch(follow=False): ...

Failures raise the exceptions of :mod:`envplane.errors` (``NotFound``, ``AlreadyExists``,
``EnvBusy``/``FailedPrecondition``, ``InvalidArgument``, ``DeadlineExceeded``, ``Unavailable``,
``Unauthenticated``...). The asyncio client has the same methods, awaited.
"""

from envplane.client._async.client import AsyncEnvplaneClient
from envplane.client._sync.client import EnvplaneClient
from envplane.client.retry import RetryPolicy

__all__ = ["AsyncEnvplaneClient", "EnvplaneClient", "RetryPolicy"]
