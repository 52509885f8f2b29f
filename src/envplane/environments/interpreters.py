"""Finding the Python interpreter for an env with ``uv python find`` (downloads disabled).

Results are cached for a few minutes: finding an interpreter costs two uv processes
(~0.1 s each), which would dominate the fast path of creating an env from a known spec.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from dataclasses import dataclass

from envplane.environments.project import uv_error_headline
from envplane.environments.uv import UvRunner
from envplane.errors import InvalidArgument

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
        raise InvalidArgument(f"python_version {value!r} is not a version request; use e.g. '3.11' or '3.11.7'")
    return value


class InterpreterFinder:
    def __init__(self, uv: UvRunner) -> None:
        self._uv = uv
        self._cache: dict[str, tuple[float, Interpreter]] = {}

    async def of_env(self, path: str, version: str, request: str, *, deadline: float | None) -> Interpreter:
        """The interpreter an env was built with, if it is still there; else find ``request`` again."""
        if path and version and os.path.exists(path):
            return Interpreter(path, version)
        return await self.find(request, deadline=deadline)

    async def find(self, request: str, *, deadline: float | None = None) -> Interpreter:
        request = validate_python_request(request)
        cached = self._cache.get(request)
        if cached and time.monotonic() - cached[0] < CACHE_SECONDS and os.path.exists(cached[1].path):
            return cached[1]
        path_result, version_result = await asyncio.gather(
            self._uv.run(["python", "find", request], deadline=deadline),
            self._uv.run(["python", "find", "--show-version", request], deadline=deadline),
        )
        if not path_result.ok or not version_result.ok:
            reason = uv_error_headline(path_result.stderr, "no interpreter found")
            raise InvalidArgument(
                f"python_version {request!r} is not available on this host: {reason} "
                "(envplane does not download interpreters; install it or pick another version)",
                detail=path_result.stderr.strip(),
            )
        found = Interpreter(os.path.realpath(path_result.stdout.strip()), version_result.stdout.strip())
        self._cache[request] = (time.monotonic(), found)
        return found
