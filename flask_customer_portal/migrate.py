"""Bring a database to the portal's current schema with its shipped Alembic migrations."""

from __future__ import annotations

from typing import Any

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from .proxies import portal

VERSION_TABLE = "portal_alembic_version"
TABLE_PREFIX = "portal_"


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Look only at the portal's own tables; the host's are none of our business."""
    table = obj if type_ == "table" else getattr(obj, "table", None)
    table_name = name if type_ == "table" else getattr(table, "name", "")
    return bool(table_name and table_name.startswith(TABLE_PREFIX) and table_name != VERSION_TABLE)


def alembic_config() -> Config:
    """Return an Alembic configuration pointing at the shipped migrations."""
    cfg = Config()
    cfg.set_main_option("script_location", "flask_customer_portal:migrations")
    return cfg


def upgrade(revision: str = "head") -> None:
    """Upgrade the portal's tables in the current app's database to ``revision``."""
    _run(command.upgrade, revision)


def downgrade(revision: str) -> None:
    """Downgrade the portal's tables in the current app's database to ``revision``."""
    _run(command.downgrade, revision)


def current_revision() -> str | None:
    """Return the revision the database is at, or ``None`` before the first upgrade."""
    engine = portal.engine
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


def head_revision() -> str | None:
    """Return the newest revision the package ships."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _run(operation: Any, revision: str) -> None:
    cfg = alembic_config()
    with portal.engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # SQLite changes a table by copying it: with foreign keys enforced,
            # dropping the old copy of a table other rows point at would fail.
            # The switch only works outside a transaction; the check after the
            # migration puts back what it stops guarding.
            connection.exec_driver_sql("PRAGMA foreign_keys = OFF")
            connection.commit()
        try:
            with connection.begin():
                cfg.attributes["connection"] = connection
                operation(cfg, revision)
                if sqlite and connection.exec_driver_sql("PRAGMA foreign_key_check").first():
                    raise RuntimeError(f"migrating to {revision} broke a foreign key")
        finally:
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys = ON")
                connection.commit()
