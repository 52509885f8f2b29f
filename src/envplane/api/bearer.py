"""The bearer token both faces check (gRPC metadata ``authorization``, the HTTP header
``Authorization``): one comparison, in constant time, and one way of saying why a call fails it."""

from __future__ import annotations

import hmac


class BearerToken:
    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

    def refusal(self, presented: bytes | None) -> str:
        """ "" when ``presented`` is ``Bearer <token>``; else why the call is refused."""
        if not presented:
            return "carried no token"
        if hmac.compare_digest(presented, self._expected):
            return ""
        return "carried a token that is not the daemon's"
