"""What the daemon and its clients both read, without pydantic: the defaults, the optional TOML
file named by ``ENVPLANE_CONFIG``, and a token file.

The CLI and the client find the daemon through the same settings as the daemon itself
(``ENVPLANE_GRPC_ADDR``, ``ENVPLANE_AUTH_TOKEN``, ``ENVPLANE_AUTH_TOKEN_FILE``, the TOML file),
but a CLI call should not pay the ~0.3 s that importing pydantic-settings costs, hence this
stdlib-only module beside ``config.py``.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

DEFAULT_GRPC_ADDR = "127.0.0.1:50051"
DEFAULT_HTTP_ADDR = "127.0.0.1:8000"
CONFIG_VARIABLE = "ENVPLANE_CONFIG"


def read_config_file() -> dict[str, Any]:
    """The settings in the TOML file named by ``ENVPLANE_CONFIG`` (top level or ``[envplane]``);
    ``{}`` when the variable is unset. A missing or broken file is a ``ValueError`` naming it."""
    path = os.environ.get(CONFIG_VARIABLE)
    if not path:
        return {}
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError as exc:
        raise ValueError(f"{CONFIG_VARIABLE} names {path!r}, which does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{CONFIG_VARIABLE} file {path!r} is not valid TOML: {exc}") from exc
    section = data.get("envplane", data)
    return section if isinstance(section, dict) else {}


def setting(name: str, file: dict[str, Any] | None = None) -> str | None:
    """One setting as the daemon resolves it: ``ENVPLANE_<NAME>``, then the TOML file."""
    value = os.environ.get(f"ENVPLANE_{name.upper()}")
    if value:
        return value
    found = (read_config_file() if file is None else file).get(name)
    return None if found in (None, "") else str(found)


def read_token_file(path: Path, variable: str = "ENVPLANE_AUTH_TOKEN_FILE") -> str:
    """The token in ``path`` (surrounding whitespace dropped), with errors that name the setting."""
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise ValueError(f"{variable} names {str(path)!r}, which cannot be read: {exc.strerror}") from exc
    if not token:
        raise ValueError(f"{variable} names {str(path)!r}, which holds no token")
    return token
