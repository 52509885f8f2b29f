"""Typed Python clients for the envplane daemon (gRPC), blocking and asyncio.

>>> from envplane.client import EnvplaneClient
>>> with EnvplaneClient() as client:            # ENVPLANE_GRPC_ADDR or 127.0.0.1:50051
...     env = client.create_env("ml_pipeline", "rag", packages=["httpx>=0.27"])

Failures raise the exceptions of :mod:`envplane.errors` (``NotFound``, ``AlreadyExists``,
``EnvBusy``/``FailedPrecondition``, ``InvalidArgument``, ``DeadlineExceeded``, ``Unavailable``).
"""

from envplane.client.aio import AsyncEnvplaneClient
from envplane.client.retry import RetryPolicy
from envplane.client.sync import EnvplaneClient
from envplane.v1 import environments_pb2 as messages

__all__ = ["AsyncEnvplaneClient", "EnvplaneClient", "RetryPolicy", "messages"]
