"""Where the client looks for the daemon: ``ENVPLANE_GRPC_ADDR``, else the default."""

from __future__ import annotations

import os

DEFAULT_GRPC_ADDR = "127.0.0.1:50051"


def default_address() -> str:
    return os.environ.get("ENVPLANE_GRPC_ADDR") or DEFAULT_GRPC_ADDR
