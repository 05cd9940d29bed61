"""refund customers: each refund keeps its payment's customer, for the history's index

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 14:23:35.733809

The billing history reads each kind of record from its own (customer, time)
index. Refunds had none: they were found through every payment of the
customer. Existing refunds take their payment's customer.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('portal_refunds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('customer_id', sa.Integer(), nullable=True))
    op.execute(
        'UPDATE portal_refunds SET customer_id = (SELECT portal_payments.customer_id '
        'FROM portal_payments WHERE portal_payments.id = portal_refunds.payment_id)'
    )
    with op.batch_alter_table('portal_refunds', schema=None) as batch_op:
        batch_op.alter_column('customer_id', existing_type=sa.Integer(), nullable=False)
        batch_op.create_index('ix_portal_refunds_history', ['customer_id', 'created_at'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_portal_refunds_customer_id_portal_customers'), 'portal_customers', ['customer_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('portal_refunds', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_portal_refunds_customer_id_portal_customers'), type_='foreignkey')
        batch_op.drop_index('ix_portal_refunds_history')
        batch_op.drop_column('customer_id')
