"""cancellation reasons: why a customer cancelled, and their comment

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 18:20:00.000000

A business can ask its customers why they cancel (its ``cancellation_reasons``
switch): the code of the reason they chose and their optional comment are kept
with the subscription. Subscriptions cancelled before have neither.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('portal_subscriptions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cancellation_reason', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('cancellation_comment', sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('portal_subscriptions', schema=None) as batch_op:
        batch_op.drop_column('cancellation_comment')
        batch_op.drop_column('cancellation_reason')
