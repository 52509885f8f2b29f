"""Looking at processes and ports from a test: is a pid still running, which port is free."""

from __future__ import annotations

import socket
from pathlib import Path


def process_running(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (killed, not yet reaped by its parent) counts as gone."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_listening(port: int, host: str = "127.0.0.1") -> bool:
    """Does something accept connections on ``host:port``?"""
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0
