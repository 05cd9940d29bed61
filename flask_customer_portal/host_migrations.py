"""Filters that keep the host's Alembic autogenerate (Flask-Migrate) away from the portal's tables.

When the portal shares the host's database, the host's ``flask db migrate``
sees the ``portal_*`` tables in the database but not in the host's models, and
would write a migration that drops them. Pass both filters to Alembic::

    from flask_migrate import Migrate
    from flask_customer_portal import host_migrations

    Migrate(
        app,
        db,
        include_name=host_migrations.include_name,
        include_object=host_migrations.include_object,
    )

Flask-Migrate hands the extra keyword arguments of ``Migrate`` to Alembic's
``context.configure``. The portal's schema is the portal's migrations'
business (``flask portal db upgrade``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .migrate import TABLE_PREFIX


def is_portal_table(name: str | None) -> bool:
    """Return whether ``name`` is one of the portal's tables (its version table included)."""
    return bool(name and name.startswith(TABLE_PREFIX))


def include_name(name: str | None, type_: str, parent_names: Mapping[str, str | None]) -> bool:
    """Alembic's ``include_name`` hook: skip the portal's tables found in the database.

    Alembic calls it for each reflected schema, table, column, index and
    constraint before comparing it; the portal's tables and everything in them
    are left out, so autogenerate never proposes to drop or change them.
    """
    if type_ == "table":
        return not is_portal_table(name)
    if type_ == "schema":
        return True
    return not is_portal_table(parent_names.get("table_name"))


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Alembic's ``include_object`` hook: skip the portal's tables, in the models or the database.

    The twin of :func:`include_name` for objects Alembic has already built:
    it also leaves out a portal table that the host's metadata happens to hold.
    """
    if type_ == "table":
        return not is_portal_table(name)
    table = getattr(obj, "table", None)
    return not is_portal_table(getattr(table, "name", None))
