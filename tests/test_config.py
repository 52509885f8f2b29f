"""Settings from defaults, ENVPLANE_* variables and the optional TOML file."""

from __future__ import annotations

from pathlib import Path

import pytest

from envplane.config import Settings


def test_zero_config_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("ENVPLANE_DATA_DIR", "ENVPLANE_CONFIG", "ENVPLANE_GRPC_ADDR", "ENVPLANE_HTTP_ADDR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    settings = Settings()
    assert settings.data_dir == tmp_path / "envplane"
    assert settings.grpc_addr == "127.0.0.1:50051" and settings.http_addr == "127.0.0.1:8000"
    assert settings.resolved_database_url == f"sqlite:///{tmp_path / 'envplane' / 'envplane.db'}"


def test_environment_variables_and_lists(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ENVPLANE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ENVPLANE_FIND_LINKS", "/a /b,/c")
    monkeypatch.setenv("ENVPLANE_NO_INDEX", "true")
    monkeypatch.setenv("ENVPLANE_DATABASE_URL", "postgresql+psycopg://u@h/db")
    settings = Settings()
    assert settings.find_links == ["/a", "/b", "/c"] and settings.no_index
    assert settings.resolved_database_url == "postgresql+psycopg://u@h/db"


def test_toml_file_below_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "envplane.toml"
    config.write_text('[envplane]\ngrpc_addr = "127.0.0.1:6000"\nmax_concurrent_uv = 3\nfind_links = ["/w"]\n')
    monkeypatch.setenv("ENVPLANE_CONFIG", str(config))
    monkeypatch.setenv("ENVPLANE_MAX_CONCURRENT_UV", "5")
    settings = Settings()
    assert settings.grpc_addr == "127.0.0.1:6000"
    assert settings.max_concurrent_uv == 5
    assert settings.find_links == ["/w"]


def test_bad_config_file_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ENVPLANE_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ValueError, match=r"missing\.toml"):
        Settings()
    broken = tmp_path / "broken.toml"
    broken.write_text("= nope")
    monkeypatch.setenv("ENVPLANE_CONFIG", str(broken))
    with pytest.raises(ValueError, match="not valid TOML"):
        Settings()
