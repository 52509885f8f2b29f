"""Real health probes: each one talks to the service the way its clients do, within its timeout.

* ``tcp``: the port accepts a connection.
* ``http``: ``GET`` answers with an accepted status (200-399 unless ``status`` says otherwise).
* ``exec``: the command exits 0 (run in a process group of its own, killed at the timeout).
* ``redis``: ``PING`` answers ``+PONG`` (``-LOADING`` or ``-NOAUTH`` are unhealthy, and say so).
* ``postgres``: the server answers a startup message the way ``pg_isready`` counts as accepting
  connections (an authentication request, or an error other than "starting up / shutting down").

No client library is needed for any of them (the env of a service need not have one, and the
daemon should not load drivers to ping). A result keeps the probe's last output, cut to 4 KiB
like Docker's health log, so a readiness wait that gives up can say what the probe saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from envplane.core.processes import run_group
from envplane.services.service.definitions import Probe

MAX_OUTPUT = 4096
POSTGRES_NOT_READY = {"57P03"}  # cannot_connect_now: starting up, shutting down, recovering


@dataclass(frozen=True)
class ProbeResult:
    healthy: bool
    output: str  # what the probe saw (an answer, an error), at most MAX_OUTPUT characters
    seconds: float


def _cut(text: str) -> str:
    return text if len(text) <= MAX_OUTPUT else text[: MAX_OUTPUT - 1] + "…"


async def probe(spec: Probe, *, default_port: int = 0, run_dir: Path | None = None) -> ProbeResult:
    """Run ``spec`` once. Never raises: a failure is an unhealthy result that says why."""
    started = time.monotonic()
    port = spec.port or default_port
    try:
        async with asyncio.timeout(spec.timeout):
            if spec.kind == "tcp":
                healthy, output = await _tcp(spec.host, port)
            elif spec.kind == "http":
                healthy, output = await _http(spec.url, spec.status)
            elif spec.kind == "redis":
                healthy, output = await _redis(spec.host, port)
            elif spec.kind == "postgres":
                healthy, output = await _postgres(spec.host, port, spec.user, spec.database)
            elif spec.kind == "exec":
                healthy, output = await _exec(spec.command, spec.timeout, run_dir)
            else:  # definitions.py refuses other kinds
                healthy, output = False, f"unknown probe kind {spec.kind!r}"
    except TimeoutError:
        healthy, output = False, f"{spec.kind} probe timed out after {spec.timeout:g} s"
    except ConnectionError as exc:
        healthy, output = False, f"{spec.kind} probe: cannot connect to {spec.host}:{port} ({exc})"
    except (OSError, asyncio.IncompleteReadError) as exc:
        healthy, output = False, f"{spec.kind} probe: {getattr(exc, 'strerror', None) or exc}"
    return ProbeResult(healthy, _cut(output), time.monotonic() - started)


async def _connection(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if not port:
        raise OSError("no port to probe (set probe.port, or the service's ports)")
    return await asyncio.open_connection(host, port)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def _tcp(host: str, port: int) -> tuple[bool, str]:
    _, writer = await _connection(host, port)
    await _close(writer)
    return True, f"{host}:{port} accepts connections"


async def _http(url: str, accepted: tuple[int, ...]) -> tuple[bool, str]:
    parts = urlsplit(url)
    secure = parts.scheme == "https"
    port = parts.port or (443 if secure else 80)
    host = parts.hostname or "127.0.0.1"
    reader, writer = await asyncio.open_connection(host, port, ssl=True if secure else None)
    try:
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        writer.write(
            f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nUser-Agent: envplane-probe\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        await writer.drain()
        head = await reader.read(MAX_OUTPUT)
    finally:
        await _close(writer)
    line = head.split(b"\r\n", 1)[0].decode(errors="replace")
    fields = line.split(" ", 2)
    if len(fields) < 2 or not fields[1].isdigit():
        return False, f"not an HTTP answer: {line!r}"
    code = int(fields[1])
    ok = code in accepted if accepted else 200 <= code < 400
    return ok, head.decode(errors="replace")


async def _redis(host: str, port: int) -> tuple[bool, str]:
    reader, writer = await _connection(host, port)
    try:
        writer.write(b"*1\r\n$4\r\nPING\r\n")
        await writer.drain()
        answer = (await reader.readline()).decode(errors="replace").strip()
    finally:
        await _close(writer)
    return answer == "+PONG", answer or "redis closed the connection without an answer"


async def _postgres(host: str, port: int, user: str, database: str) -> tuple[bool, str]:
    reader, writer = await _connection(host, port)
    try:
        body = struct.pack(">I", 196608)  # protocol 3.0
        for key, value in (("user", user), ("database", database), ("application_name", "envplane-probe")):
            body += key.encode() + b"\0" + value.encode() + b"\0"
        body += b"\0"
        writer.write(struct.pack(">I", len(body) + 4) + body)
        await writer.drain()
        kind = await reader.readexactly(1)
        size = struct.unpack(">I", await reader.readexactly(4))[0]
        payload = await reader.readexactly(max(size - 4, 0))
        if kind == b"R":  # an authentication request (or AuthenticationOk): it accepts connections
            writer.write(b"X\0\0\0\4")  # Terminate
            return True, "accepting connections"
        if kind != b"E":
            return False, f"unexpected answer {kind!r} to a startup message"
        fields = {chunk[:1].decode(): chunk[1:].decode(errors="replace") for chunk in payload.split(b"\0") if chunk}
        code, message = fields.get("C", ""), fields.get("M", "")
        # Like pg_isready: a server that refuses *us* (password, no such database) is up.
        return code not in POSTGRES_NOT_READY, f"{code}: {message}"
    finally:
        await _close(writer)


async def _exec(command: tuple[str, ...], timeout: float, run_dir: Path | None) -> tuple[bool, str]:
    result = await run_group(
        command,
        label="probe",
        run_dir=run_dir or Path(tempfile.gettempdir()) / "envplane-probes",  # the daemon passes its run/
        timeout=timeout,
        capture_bytes=MAX_OUTPUT,
    )
    output = (result.stdout + result.stderr).strip()
    if result.timed_out:
        return False, f"exec probe timed out after {timeout:g} s: {output}"
    return (
        result.exit_code == 0,
        f"exit code {result.exit_code}: {output}" if output else f"exit code {result.exit_code}",
    )
