"""What every REST request passes before a route runs. A daemon on loopback is still reachable
from any web page its user opens, and it can run code (RunCode, workers), so:

- **Host.** A DNS-rebinding page reaches ``127.0.0.1`` under a name of its own; the browser then
  sends that name as ``Host``. Only the names of the daemon's own address (the loopback names
  with its port, the address it listens on) and ``ENVPLANE_ALLOWED_HOSTS`` are answered (400).
- **Cross-site requests.** A request whose ``Origin`` is not the daemon's own (nor in
  ``ENVPLANE_CORS_ORIGINS``), or that the browser marks ``Sec-Fetch-Site: cross-site``, is
  refused (403). CORS is closed unless origins are configured.
- **JSON only.** A mutating request (POST, PUT, PATCH, DELETE) with a body must say
  ``Content-Type: application/json`` (415): the "simple" cross-site POST a page can send
  without asking (``text/plain``, forms) never reaches a route.
- **Token.** With ``ENVPLANE_AUTH_TOKEN`` set, every route but ``/health`` and the API docs needs
  ``Authorization: Bearer <token>`` (401), compared in constant time.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from envplane.api.bearer import BearerToken
from envplane.api.rest_errors import error_response

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
OPEN_PATHS = ("/health", "/docs", "/openapi.json", "/static-offline-docs/")
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})


def allowed_hosts(bound_host: str, port: int, extra: Iterable[str]) -> frozenset[str] | None:
    """Host header values to answer; None = any (``*``, or listening on every address)."""
    extra = list(extra)
    if "*" in extra or (bound_host in WILDCARD_HOSTS and not extra):
        return None
    names = {"127.0.0.1", "localhost", "[::1]", f"[{bound_host}]" if ":" in bound_host else bound_host}
    hosts = {f"{name}:{port}" for name in names}
    for entry in (e.lower() for e in extra):
        has_port = "]:" in entry if entry.startswith("[") else entry.count(":") == 1
        hosts.update({entry} if has_port else {entry, f"{entry}:{port}"})
    return frozenset(hosts)


class RequestGuard:
    """Pure ASGI middleware (cheap on every request)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        hosts: frozenset[str] | None,
        cors_origins: Iterable[str] = (),
        token: str | None = None,
    ) -> None:
        self.app = app
        self.hosts = hosts
        self.cors_origins = frozenset(o.rstrip("/") for o in cors_origins)
        self.token = BearerToken(token) if token else None

    def _own_origin(self, origin: str) -> bool:
        if origin in self.cors_origins:
            return True
        scheme, _, host = origin.partition("://")
        return scheme in ("http", "https") and (self.hosts is None or host.lower() in self.hosts)

    def _refusal(self, scope: Scope) -> tuple[int, str, str] | None:
        headers: dict[str, str] = {}
        for key, value in scope["headers"]:
            headers[key.decode("latin-1").lower()] = value.decode("latin-1")
        host = headers.get("host", "").lower()
        if self.hosts is not None and host not in self.hosts:
            return 400, "INVALID_ARGUMENT", f"this daemon does not answer to Host {host!r} (ENVPLANE_ALLOWED_HOSTS)"
        origin = headers.get("origin")
        if origin is not None and not self._own_origin(origin):
            return 403, "PERMISSION_DENIED", f"cross-site request from {origin!r} refused (ENVPLANE_CORS_ORIGINS)"
        if headers.get("sec-fetch-site") == "cross-site" and origin not in self.cors_origins:
            return 403, "PERMISSION_DENIED", "cross-site request refused (ENVPLANE_CORS_ORIGINS)"
        path: str = scope["path"]
        if self.token is not None and not path.startswith(OPEN_PATHS):
            why = self.token.refusal(headers.get("authorization", "").encode("latin-1"))
            if why:
                return (
                    401,
                    "UNAUTHENTICATED",
                    f"this daemon requires a token and the request {why}: send 'Authorization: Bearer <token>'",
                )
        if scope["method"] in MUTATING:
            kind = headers.get("content-type", "").split(";")[0].strip().lower()
            has_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
            if (kind or has_body) and kind != "application/json":
                shown = kind or "no Content-Type"
                return (
                    415,
                    "INVALID_ARGUMENT",
                    f"{scope['method']} {path} takes a JSON body (Content-Type: application/json), not {shown}",
                )
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, code, message = refusal
        response: Any = error_response(status, code, message)
        if status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="envplane"'
        await response(scope, receive, send)
