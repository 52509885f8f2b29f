"""Repository functions whose guarantees the service relies on."""

from __future__ import annotations

from pathlib import Path

from envplane.environments.service import queries as repo
from envplane.store import Store


def test_touch_never_creates_an_env(tmp_path: Path) -> None:
    """Export records use without the env lock: a concurrent delete must stay a delete."""
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    key = ("wf", "node", "")
    assert store.run_sync(lambda s: repo.touch_env(s, key, 123.0)) is False
    assert store.run_sync(lambda s: repo.get_env(s, key)) is None
    store.run_sync(lambda s: repo.upsert_env(s, key, status="READY", created_at=1.0, updated_at=1.0, last_used_at=1.0))
    assert store.run_sync(lambda s: repo.touch_env(s, key, 123.0)) is True
    record = store.run_sync(lambda s: repo.get_env(s, key))
    assert record is not None and record.last_used_at == 123.0
    store.close()
