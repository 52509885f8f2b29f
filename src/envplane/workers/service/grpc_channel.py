"""The parent's side of the grpc transport: one loopback channel per worker, two raw methods.

The worker serves ``envplane.worker.v1.Worker`` on the port its handshake names, with the
channel's own frames as the request and response bytes (no generated code on either side:
the worker's bootstrap stays stdlib plus grpcio). ``Call`` answers one frame; ``Stream``
answers the chunk frames, then the end or error frame.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from envplane.workers.service.bootstrap import GRPC_SERVICE

OPTIONS = [
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
    ("grpc.enable_retries", 0),  # a call is never re-sent behind the pool's back
]


class GrpcChannel:
    def __init__(self, port: int) -> None:
        self.port = port
        self._channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=OPTIONS)
        self._call = self._channel.unary_unary(f"/{GRPC_SERVICE}/Call")
        self._stream = self._channel.unary_stream(f"/{GRPC_SERVICE}/Stream")

    async def call(self, frame: bytes) -> bytes:
        return await self._call(frame, wait_for_ready=True)  # type: ignore[no-any-return]

    async def stream(self, frame: bytes) -> AsyncIterator[bytes]:
        async for reply in self._stream(frame, wait_for_ready=True):
            yield reply

    async def close(self) -> None:
        await self._channel.close(grace=None)
