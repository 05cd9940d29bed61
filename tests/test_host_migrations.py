"""The shipped Alembic filters keep a host's autogenerate away from the portal's tables.

A host with its own Flask-SQLAlchemy model shares a database with the portal's
migrated tables: Alembic compares the host's models with that database, as
``flask db migrate`` does.
"""

from __future__ import annotations

import logging.config
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import flask_migrate
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from flask_customer_portal import CustomerPortal, host_migrations
from flask_customer_portal.db import Base as PortalBase

FILTERS = {
    "include_name": host_migrations.include_name,
    "include_object": host_migrations.include_object,
}


def host(database_url: str, instance_path: Path) -> tuple[Flask, SQLAlchemy]:
    """A shop whose model has a column its table does not have yet, with the portal in its db."""

    class Base(DeclarativeBase):
        pass

    db = SQLAlchemy(model_class=Base)

    class Order(db.Model):  # type: ignore[name-defined]
        __tablename__ = "shop_orders"
        id: Mapped[int] = mapped_column(primary_key=True)
        reference: Mapped[str] = mapped_column(sa.String(20), index=True)

    app = Flask("shop", instance_path=str(instance_path))
    app.config.update(SQLALCHEMY_DATABASE_URI=database_url, TESTING=True)
    db.init_app(app)
    CustomerPortal(app, db=db)
    return app, db


@pytest.fixture
def shop(database_url: str, tmp_path: Path) -> Iterator[tuple[Flask, SQLAlchemy]]:
    app, db = host(database_url, tmp_path)
    with app.app_context():
        with db.engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE shop_orders (id INTEGER NOT NULL PRIMARY KEY)")
        yield app, db
        with db.engine.begin() as connection:
            connection.exec_driver_sql("DROP TABLE shop_orders")
        db.engine.dispose()


def changes(db: SQLAlchemy, **options: Any) -> list[tuple[str, str]]:
    """What autogenerate proposes for the host's models, as (operation, table)."""
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts=options)
        found = compare_metadata(context, db.metadata)
    flat = [change for group in found for change in (group if isinstance(group, list) else [group])]
    return sorted((change[0], _table_of(change)) for change in flat)


def _table_of(change: tuple[Any, ...]) -> str:
    if change[0] in ("add_table", "remove_table"):
        return str(change[1].name)
    if change[0] in ("add_index", "remove_index"):
        return str(change[1].table.name)
    return str(change[2])  # add_column, modify_*: (op, schema, table, ...)


def test_autogenerate_proposes_the_hosts_changes_only(shop: tuple[Flask, SQLAlchemy]) -> None:
    _, db = shop
    portal_tables = sorted(["portal_alembic_version", *PortalBase.metadata.tables])

    assert changes(db, **FILTERS) == [
        ("add_column", "shop_orders"),
        ("add_index", "shop_orders"),
    ]
    # Without the filters, the host's next migration would drop every portal table.
    unfiltered = changes(db)
    assert [("remove_table", name) for name in portal_tables] == [
        change for change in unfiltered if change[0] == "remove_table"
    ]


# Flask-Migrate's generated env.py tries Flask-SQLAlchemy's deprecated get_engine first.
@pytest.mark.filterwarnings("ignore:'get_engine' is deprecated:DeprecationWarning")
def test_flask_migrate_passes_the_filters_to_alembic(
    shop: tuple[Flask, SQLAlchemy], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The host's real ``flask db migrate`` writes a revision of its own table only."""
    # The env.py that `init` writes loads alembic.ini's logging set-up, which
    # disables every logger that exists: the later tests reading the app's log
    # would hear nothing. This process keeps the suite's logging.
    monkeypatch.setattr(logging.config, "fileConfig", lambda *args, **kwargs: None)
    app, db = shop
    directory = str(tmp_path / "migrations")
    flask_migrate.Migrate(app, db, directory=directory, **FILTERS)
    flask_migrate.init(directory)
    flask_migrate.migrate(directory, message="order references")

    (revision,) = (tmp_path / "migrations" / "versions").glob("*.py")
    script = revision.read_text()
    assert "op.add_column('reference'" in script or "batch_op.add_column(" in script
    assert "shop_orders" in script
    assert "portal_" not in script
