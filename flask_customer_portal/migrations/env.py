"""Alembic environment of the portal's own schema.

Run through :func:`flask_customer_portal.migrate.upgrade`, which hands over a
connection. The portal keeps its own version table, so its history never
collides with the host's Flask-Migrate, and it only ever looks at ``portal_*``
tables.
"""

from __future__ import annotations

from typing import Any

from alembic import context

from flask_customer_portal.db import Base
from flask_customer_portal.migrate import VERSION_TABLE, include_object

connection: Any = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    version_table=VERSION_TABLE,
    include_object=include_object,
    render_as_batch=True,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
