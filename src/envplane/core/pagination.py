"""Opaque page tokens shared by every paginated call (ListEnvs, ListOperations).

A token encodes the offset of the next page; it is opaque so the encoding can change.
Bad tokens and sizes are :class:`InvalidArgument`, naming the field.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Generic, TypeVar

from envplane.errors import InvalidArgument, echo

MAX_OFFSET = 2**63 - 1  # what a database integer holds

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    next_page_token: str
    offset: int
    limit: int


def encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


def decode_token(token: str) -> int:
    if not token:
        return 0
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        if not raw.startswith("o:"):
            raise ValueError(raw)
        offset = int(raw[2:])
        if not 0 <= offset <= MAX_OFFSET:
            raise ValueError(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"page_token {echo(token)} is not a token this server issued") from exc
    return offset


def resolve_window(page_size: int, page_token: str, *, default: int, maximum: int) -> tuple[int, int]:
    """(offset, limit) for a request; ``page_size`` 0 means the default."""
    if page_size < 0:
        raise InvalidArgument(f"page_size must be >= 0, got {page_size}")
    if page_size > maximum:
        raise InvalidArgument(f"page_size must be <= {maximum}, got {page_size}")
    return decode_token(page_token), page_size or default


def make_page(items: list[T], total: int, offset: int, limit: int) -> Page[T]:
    following = offset + len(items)
    token = encode_token(following) if following < total and items else ""
    return Page(items, total, token, offset, limit)
