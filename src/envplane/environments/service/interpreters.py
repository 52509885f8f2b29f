"""Finding the Python interpreter for an env with ``uv python find`` (downloads disabled).

Finding costs one uv process (0.15 s on a machine with pyenv shims, as uv probes each one)
and one run of the interpreter for its exact version. Results are cached for a few minutes,
and concurrent lookups of the same request share one in-flight lookup, so twenty creates
arriving together do not start forty uv processes. The shared lookup belongs to the finder,
not to the first caller: it runs to its own bound (uv's timeout), and each caller waits for it
within its own deadline, so a caller in a hurry cannot fail the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
import time
from dataclasses import dataclass

from envplane.core.processes import reap
from envplane.environments.service.project import uv_error_headline, without_flag_hints
from envplane.environments.service.uv import UvRunner
from envplane.errors import DeadlineExceeded, InvalidArgument, echo

_REQUEST = re.compile(r"[A-Za-z0-9<>=!~][A-Za-z0-9@.+<>=!~,*_-]{0,63}")
CACHE_SECONDS = 300.0


@dataclass(frozen=True)
class Interpreter:
    path: str  # resolved real path: part of the build id
    version: str  # e.g. "3.11.7"

    @property
    def identity(self) -> str:
        return f"{self.path}|{self.version}"


def default_python_request(configured: str | None) -> str:
    return configured or f"{sys.version_info.major}.{sys.version_info.minor}"


def validate_python_request(value: str) -> str:
    if not _REQUEST.fullmatch(value) or "/" in value:
        raise InvalidArgument(f"python_version {echo(value)} is not a version request; use e.g. '3.11' or '3.11.7'")
    return value


_VERSION_CODE = "import sys; print('.'.join(map(str, sys.version_info[:3])))"


class InterpreterFinder:
    def __init__(self, uv: UvRunner) -> None:
        self._uv = uv
        self._cache: dict[str, tuple[float, Interpreter]] = {}
        self._in_flight: dict[str, asyncio.Future[Interpreter]] = {}

    async def of_env(self, path: str, version: str, request: str, *, deadline: float | None) -> Interpreter:
        """The interpreter an env was built with, if it is still there; else find ``request`` again."""
        if path and version and os.path.exists(path):
            return Interpreter(path, version)
        return await self.find(request, deadline=deadline)

    async def close(self) -> None:
        """Cancel lookups still in flight and wait for them (they own subprocesses)."""
        pending = list(self._in_flight.values())
        for future in pending:
            future.cancel()
        for future in pending:
            with contextlib.suppress(BaseException):
                await future

    async def find(self, request: str, *, deadline: float | None = None) -> Interpreter:
        request = validate_python_request(request)
        cached = self._cache.get(request)
        if cached and time.monotonic() - cached[0] < CACHE_SECONDS and os.path.exists(cached[1].path):
            return cached[1]
        pending = self._in_flight.get(request)
        if pending is None:
            pending = asyncio.ensure_future(self._lookup(request))
            self._in_flight[request] = pending
            pending.add_done_callback(lambda _f: self._in_flight.pop(request, None))
        timeout = None if deadline is None else deadline - time.monotonic()
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(pending)
        except TimeoutError:
            raise DeadlineExceeded(
                f"the call's deadline passed while looking for python {request!r} "
                "(the lookup goes on for other callers)"
            ) from None

    async def _lookup(self, request: str) -> Interpreter:
        result = await self._uv.run(["python", "find", request])
        if not result.ok:
            reason = uv_error_headline(result.stderr, "no interpreter found")
            raise InvalidArgument(
                f"python_version {request!r} is not available on this host: {reason} "
                "(envplane does not download interpreters; install it or pick another version)",
                detail=without_flag_hints(result.stderr).strip(),
            )
        path = os.path.realpath(result.stdout.strip())
        proc = await asyncio.create_subprocess_exec(
            path,
            "-I",
            "-S",
            "-c",
            _VERSION_CODE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            out, _ = await proc.communicate()
        finally:
            if proc.returncode is None:  # cancelled: do not leave the probe running
                proc.kill()
                await reap(proc)
        version = out.decode().strip()
        if proc.returncode != 0 or not version:
            raise InvalidArgument(f"python_version {request!r}: the interpreter uv found at {path} does not run")
        found = Interpreter(path, version)
        self._cache[request] = (time.monotonic(), found)
        return found
