"""Settings: plain data resolved once from ``ENVPLANE_*`` variables and an optional TOML file.

Precedence, highest first: keyword arguments (tests), environment variables, the TOML file
named by ``ENVPLANE_CONFIG``, built-in defaults. Nothing here touches the disk or the network
beyond reading that file: creating directories is the daemon's job at start-up.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from envplane.config_file import DEFAULT_GRPC_ADDR, DEFAULT_HTTP_ADDR, read_config_file, read_token_file


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/envplane``, falling back to ``~/.local/share/envplane``."""
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "envplane"


def _default_uv_concurrency() -> int:
    # uv spends most of its time linking files from its cache and waiting on the
    # interpreter, so a few processes per core keep the machine busy without thrashing.
    return max(4, 4 * (os.cpu_count() or 1))


class _TomlFileSource(PydanticBaseSettingsSource):
    """Reads the file named by ``ENVPLANE_CONFIG`` (top-level keys = setting names)."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        self._data = read_config_file()

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._data.items() if k in self.settings_cls.model_fields}


class Settings(BaseSettings):
    """Every knob of the daemon. See README "Configuration" for the user-facing table."""

    model_config = SettingsConfigDict(env_prefix="ENVPLANE_", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir)
    grpc_addr: str = DEFAULT_GRPC_ADDR
    http_addr: str = DEFAULT_HTTP_ADDR
    database_url: str | None = None
    log_level: str = "info"

    # access: a bearer token (or a file holding it) is required to listen off loopback
    auth_token: SecretStr | None = None
    auth_token_file: Path | None = None
    allow_insecure_bind: bool = False  # listen off loopback without a token (behind your own proxy)
    # Host header values the REST face accepts besides the loopback names of its own port
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Origins a browser page may call the REST face from (CORS); none by default
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # uv and package sources
    uv_bin: str | None = None
    uv_cache_dir: Path | None = None
    default_python: str | None = None
    index_url: str | None = None
    extra_index_urls: Annotated[list[str], NoDecode] = Field(default_factory=list)
    find_links: Annotated[list[str], NoDecode] = Field(default_factory=list)
    no_index: bool = False
    allow_direct_references: bool = False
    max_concurrent_uv: int = Field(default_factory=_default_uv_concurrency, ge=1)
    uv_timeout_seconds: float = Field(default=900.0, gt=0)

    # services (backing services: redis, postgres, ...): their TOML (default: [services.*] of
    # ENVPLANE_CONFIG), what the daemon does with them when it stops, the engine for docker ones
    services_config: Path | None = None
    services_on_shutdown: Literal["stop", "leave"] = "stop"  # leave: the next daemon adopts them
    services_wait_seconds: float = Field(default=120.0, gt=0)  # `up --wait` when a request names none
    services_parallel_starts: int = Field(default=8, ge=1)
    docker_host: str | None = None  # default: DOCKER_HOST, then the engine's default socket
    compat_env_manager: bool = True  # serve env_manager.v1.EnvManagerService (the original protocol)

    # observations: the policy a pipeline is decided by unless set for it (rightsizer |
    # seqera-max | witt-p95 | tovar | presets); no retry asks for more memory than the cap (0: none)
    observations_policy: str = "rightsizer"
    observations_memory_cap: int = Field(default=0, ge=0)  # bytes
    compat_nf_ai_comms: bool = True  # serve nf_ai_comms.AiActionService (the earlier plugin's protocol)

    # RunCode (the UV Venv Manager compat face): users' code run with an env's interpreter
    run_code_enabled: bool = True
    run_code_timeout_seconds: float = Field(default=300.0, gt=0)  # when a request names none
    # Serve the UV Venv Manager protocol (envmanager.EnvManagerService) beside envplane.v1
    compat_envmanager: bool = True

    # API behaviour
    max_page_size: int = Field(default=500, ge=1)
    default_page_size: int = Field(default=50, ge=1)
    shutdown_grace_seconds: float = Field(default=5.0, ge=0)

    # retention of the audit log and the event stream (0 = no limit of that kind)
    operations_keep_days: float = Field(default=90.0, ge=0)
    operations_keep_count: int = Field(default=20_000, ge=0)
    events_keep_days: float = Field(default=30.0, ge=0)
    events_keep_count: int = Field(default=100_000, ge=0)
    retention_interval_seconds: float = Field(default=300.0, gt=0)

    @field_validator("extra_index_urls", "find_links", "allowed_hosts", "cors_origins", mode="before")
    @classmethod
    def _split_lists(cls, value: Any) -> Any:
        # Accept "a b" / "a,b" from environment variables as well as real lists.
        if isinstance(value, str):
            return [part for part in value.replace(",", " ").split() if part]
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlFileSource(settings_cls))

    @model_validator(mode="after")
    def _one_token_source(self) -> Settings:
        if self.auth_token is not None and self.auth_token_file is not None:
            raise ValueError("set ENVPLANE_AUTH_TOKEN or ENVPLANE_AUTH_TOKEN_FILE, not both")
        if self.auth_token is not None and not self.auth_token.get_secret_value().strip():
            raise ValueError("ENVPLANE_AUTH_TOKEN is empty")
        return self

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'envplane.db'}"

    def resolved_auth_token(self) -> str | None:
        """The bearer token calls must carry, or None when the daemon wants none."""
        if self.auth_token is not None:
            return self.auth_token.get_secret_value().strip()
        if self.auth_token_file is not None:
            return read_token_file(self.auth_token_file)
        return None


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses; ``0.0.0.0``, ``::`` and names are not."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
