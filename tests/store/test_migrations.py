"""Alembic migrations: a database of release 0.1.0 is upgraded with nothing lost, a new one gets
the newest schema, and the models match what the migrations build (on SQLite and PostgreSQL)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from envplane.client import EnvplaneClient
from envplane.config import Settings
from envplane.core import audit, events
from envplane.core.audit import OperationFilter
from envplane.environments.service import queries
from envplane.observations.service import tables as observation_tables  # noqa: F401 - its models in Base.metadata
from envplane.store import Base, Store
from envplane.store.migrate import SCRIPTS, alembic_config
from envplane.v1 import environments_pb2 as pb
from envplane.workers.service import tables as worker_tables  # noqa: F401 - its models in Base.metadata
from tests.support.daemons import ThreadDaemon

RELEASE_0_1_0 = Path(__file__).parent / "data" / "envplane-0.1.0.db"


def head_revision() -> str:
    config = alembic_config(None)  # type: ignore[arg-type]
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def test_the_first_revision_is_the_schema_of_0_1_0() -> None:
    assert (SCRIPTS / "versions" / "0001_initial.py").is_file()
    assert head_revision() != "0001", "later revisions exist (subjects, retention marks)"


def test_a_database_of_release_0_1_0_keeps_its_envs_and_audit(tmp_path: Path) -> None:
    path = tmp_path / "envplane.db"
    shutil.copy(RELEASE_0_1_0, path)
    store = Store(f"sqlite:///{path}")
    try:
        with store.engine.connect() as connection:
            assert MigrationContext.configure(connection).get_current_revision() == head_revision()
        envs = {f"{r.workflow_id}/{r.node_id}@{r.version_id}": r for r in store.run_sync(queries.all_envs)}
        assert {k: r.status for k, r in envs.items()} == {
            "legacy/rag@": "READY",
            "legacy/tok@v1": "READY",
            "legacy/bad@": "FAILED",
        }
        assert '"gamma==0.1.0"' in envs["legacy/rag@"].pyproject_toml and "[[package]]" in envs["legacy/rag@"].uv_lock
        ops, total = store.run_sync(lambda s: audit.list_operations(s, OperationFilter(), limit=50))
        assert total == 7
        assert [(o.operation, o.status, o.subject.kind, o.subject.id) for o in reversed(ops)] == [
            ("create", "SUCCEEDED", "environment", "legacy/rag"),
            ("add", "SUCCEEDED", "environment", "legacy/rag"),
            ("create", "SUCCEEDED", "environment", "legacy/tok@v1"),
            ("create", "FAILED", "environment", "legacy/bad"),
            ("create", "SUCCEEDED", "environment", "legacy/gone"),
            ("delete", "SUCCEEDED", "environment", "legacy/gone"),
            ("cleanup", "SUCCEEDED", "environment", ""),
        ]
        assert "does-not-exist" in ops[3].stderr, "uv's output survived"
        replay = store.run_sync(lambda s: events.events_after(s, cursor=0))
        assert [e.cursor for e in replay] == list(range(1, 12))
        assert replay[2].type == "DependenciesAdded" and replay[2].subject.id == "legacy/rag"
        assert replay[2].payload["changes"] == {"gamma": ["", "0.1.0"]}
    finally:
        store.close()


def test_a_daemon_serves_an_upgraded_database(tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(data_dir=tmp_path / "data", database_url=None)
    settings.data_dir.mkdir(parents=True)
    shutil.copy(RELEASE_0_1_0, settings.data_dir / "envplane.db")
    daemon = ThreadDaemon(settings).start()
    try:
        with EnvplaneClient(daemon.grpc_addr, timeout=30) as client:
            rag = client.environments.get("legacy", "rag")
            # Its venv build was on the machine that wrote the file: BROKEN until a sync rebuilds it.
            assert rag.status == pb.BROKEN and "run sync" in rag.error
            assert client.environments.sync("legacy", "rag").environment.status == pb.READY
            # six of 0.1.0 (its cleanup is of no workflow), and the sync
            assert client.operations.list(workflow_id="legacy").total == 7
            cursors = [e.cursor for e in client.events.watch(0, follow=False)]
            assert cursors[:11] == list(range(1, 12)) and cursors[11] > 11, "new events follow the old ones"
    finally:
        daemon.stop()


def test_the_models_match_the_migrations(database_url: str | None, tmp_path: Path) -> None:
    """What ``make_engine`` + migrations build is what the models declare: a table or column
    added to a model without a migration fails here."""
    store = Store(database_url or f"sqlite:///{tmp_path / 'fresh.db'}")
    try:
        with store.engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
            tables = set(inspect(connection).get_table_names())
        assert differences == []
        assert {
            "environments",
            "resolutions",
            "operations",
            "events",
            "retention_marks",
            "worker_pools",
            "observations",
        } <= tables
    finally:
        store.close()


def test_upgrading_twice_changes_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'twice.db'}"
    Store(url).close()
    store = Store(url)
    try:
        assert store.run_sync(queries.all_envs) == []
    finally:
        store.close()
