"""Request parameters every REST router shares: the deadline header."""

from __future__ import annotations

import math
import time
from typing import Annotated

from fastapi import Header

from envplane.errors import InvalidArgument, echo

MAX_TIMEOUT_SECONDS = 7 * 86_400.0

TimeoutHeader = Annotated[
    str | None,
    Header(
        alias="X-Request-Timeout",
        description="Seconds this request may take (its deadline): a number > 0; none = no deadline.",
    ),
]


def deadline_from(timeout: str | None) -> float | None:
    """``X-Request-Timeout`` as a ``time.monotonic()`` deadline; a value that is not a finite
    number of seconds > 0 is refused, naming the header (``nan`` would silently mean "none")."""
    if timeout is None:
        return None
    try:
        seconds = float(timeout)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and 0 < seconds <= MAX_TIMEOUT_SECONDS):
        raise InvalidArgument(
            f"X-Request-Timeout must be a number of seconds > 0 and <= {MAX_TIMEOUT_SECONDS:g}, got {echo(timeout)}"
        )
    return time.monotonic() + seconds


INT32_MAX = 2**31 - 1


def int32(field: str, value: int) -> int:
    """A query parameter bound for an int32 field of a request message (page sizes): refused,
    naming it, when out of range, rather than failing to build the message."""
    if not -INT32_MAX - 1 <= value <= INT32_MAX:
        raise InvalidArgument(f"{field} must be between {-INT32_MAX - 1} and {INT32_MAX}, got {value}")
    return value


INT64_MAX = 2**63 - 1


def int64(field: str, value: int) -> int:
    """The same for an int64 field (sizes in bytes, times in ms)."""
    if not -INT64_MAX - 1 <= value <= INT64_MAX:
        raise InvalidArgument(f"{field} must be between {-INT64_MAX - 1} and {INT64_MAX}, got {value}")
    return value
