"""Bringing a database to the newest schema with Alembic, at every start of the daemon (and of
``LocalEnvironmentProvider``).

A database written by release 0.1.0, before migrations existed, has the tables but no
``alembic_version``: it is stamped with the first revision (which is exactly that schema), then
upgraded like any other. On PostgreSQL an advisory lock keeps two processes sharing one database
from upgrading it at once.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, inspect, text

SCRIPTS = Path(__file__).parent / "migrations"
FIRST_REVISION = "0001"
_ADVISORY_LOCK = 0x656E76706C616E65  # "envplane"

logger = logging.getLogger("envplane.store")


def alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    config.attributes["connection"] = connection
    return config


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> None:
    """Apply every migration the database lacks (nothing, usually: one query)."""
    logging.getLogger("alembic").setLevel(logging.WARNING)  # it narrates every start at INFO
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK})
        before = current_revision(connection)
        config = alembic_config(connection)
        if before is None and "environments" in inspect(connection).get_table_names():
            command.stamp(config, FIRST_REVISION)  # written by 0.1.0: the first revision's schema
            before = FIRST_REVISION
        command.upgrade(config, "head")
        after = current_revision(connection)
    if after != before:
        logger.info("database schema upgraded from %s to %s", before or "nothing", after)
