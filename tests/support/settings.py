"""The settings of every daemon, service and provider the tests make, built in one place."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from envplane.config import Settings


def offline_settings(data_dir: Path, find_links: Sequence[Path], uv_cache: Path | None, **overrides: Any) -> Settings:
    """Packages from these folders only (no index), ephemeral loopback ports, a short grace."""
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "no_index": True,
        "find_links": [str(f) for f in find_links],
        "uv_cache_dir": uv_cache,
        "grpc_addr": "127.0.0.1:0",
        "http_addr": "127.0.0.1:0",
        "default_python": "3.11",
        "shutdown_grace_seconds": 1.0,
        "log_level": "warning",
    }
    values.update(overrides)
    return Settings(**values)


def as_environment(settings: Settings) -> dict[str, str]:
    """The same settings as ``ENVPLANE_*`` variables, for a daemon in a child process."""
    env = {}
    for name, value in settings.model_dump(exclude_defaults=True).items():
        if value is None:
            continue
        if isinstance(value, list):
            value = " ".join(map(str, value))
        elif isinstance(value, bool):
            value = str(value).lower()
        elif hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"ENVPLANE_{name.upper()}"] = str(value)
    return env
