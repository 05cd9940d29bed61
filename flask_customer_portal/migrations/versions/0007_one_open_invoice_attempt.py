"""one payment in flight per invoice

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-09 10:00:00.000000

A customer can pay any open invoice from its page, a one-off invoice too,
which has no subscription to hold its one payment in flight: a partial unique
index allows at most one payment with status pending or requires_action per
invoice, as ix_portal_payments_one_open_attempt does per subscription (P2).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

IN_FLIGHT = sa.text("status IN ('pending', 'requires_action')")


def upgrade() -> None:
    with op.batch_alter_table('portal_payments', schema=None) as batch_op:
        batch_op.create_index('ix_portal_payments_one_open_invoice_attempt', ['invoice_id'], unique=True, sqlite_where=IN_FLIGHT, postgresql_where=IN_FLIGHT)


def downgrade() -> None:
    with op.batch_alter_table('portal_payments', schema=None) as batch_op:
        batch_op.drop_index('ix_portal_payments_one_open_invoice_attempt', sqlite_where=IN_FLIGHT, postgresql_where=IN_FLIGHT)
