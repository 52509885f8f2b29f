"""Where a client finds the daemon, and the token it sends: the same settings the daemon reads
(``ENVPLANE_GRPC_ADDR``, ``ENVPLANE_AUTH_TOKEN``, ``ENVPLANE_AUTH_TOKEN_FILE``, the TOML file
named by ``ENVPLANE_CONFIG``), without importing the daemon's settings machinery."""

from __future__ import annotations

from pathlib import Path

from envplane.config_file import DEFAULT_GRPC_ADDR, read_config_file, read_token_file, setting

# Let a restarted daemon be reached quickly: gRPC otherwise waits up to 120 s between
# reconnection attempts, and every call inside that wait fails at once.
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
]


def default_address() -> str:
    return setting("grpc_addr") or DEFAULT_GRPC_ADDR


def default_token() -> str | None:
    """``ENVPLANE_AUTH_TOKEN``, else the file ``ENVPLANE_AUTH_TOKEN_FILE`` names, else None."""
    file = read_config_file()
    token = setting("auth_token", file)
    if token:
        return token.strip()
    path = setting("auth_token_file", file)
    return read_token_file(Path(path)) if path else None


def auth_metadata(token: str | None) -> tuple[tuple[str, str], ...] | None:
    return (("authorization", f"Bearer {token}"),) if token else None
