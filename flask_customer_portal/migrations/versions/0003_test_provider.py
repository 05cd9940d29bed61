"""test provider: its cards, card pages and charges, shared by every process

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 09:34:34.714583
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('portal_test_provider_cards',
    sa.Column('token', sa.String(length=40), nullable=False),
    sa.Column('customer_ref', sa.String(length=40), nullable=False),
    sa.Column('brand', sa.String(length=20), nullable=False),
    sa.Column('last4', sa.String(length=4), nullable=False),
    sa.Column('exp_month', sa.Integer(), nullable=False),
    sa.Column('exp_year', sa.Integer(), nullable=False),
    sa.Column('outcome', sa.String(length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("outcome IN ('succeed', 'declined', 'insufficient_funds', 'expired', 'authenticate')", name=op.f('ck_portal_test_provider_cards_outcome')),
    sa.PrimaryKeyConstraint('token', name=op.f('pk_portal_test_provider_cards'))
    )
    with op.batch_alter_table('portal_test_provider_cards', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_portal_test_provider_cards_customer_ref'), ['customer_ref'], unique=False)

    op.create_table('portal_test_provider_charges',
    sa.Column('idempotency_key', sa.String(length=255), nullable=False),
    sa.Column('charge_id', sa.String(length=40), nullable=False),
    sa.Column('customer_ref', sa.String(length=40), nullable=False),
    sa.Column('token', sa.String(length=40), nullable=False),
    sa.Column('amount', sa.Integer(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('description', sa.String(length=500), nullable=False),
    sa.Column('return_url', sa.String(length=2000), nullable=False),
    sa.Column('status', sa.String(length=15), nullable=False),
    sa.Column('failure_reason', sa.String(length=500), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('succeeded', 'failed', 'requires_action')", name=op.f('ck_portal_test_provider_charges_status')),
    sa.CheckConstraint('amount > 0', name=op.f('ck_portal_test_provider_charges_amount')),
    sa.CheckConstraint('length(currency) = 3 AND upper(currency) = currency', name=op.f('ck_portal_test_provider_charges_currency')),
    sa.PrimaryKeyConstraint('idempotency_key', name=op.f('pk_portal_test_provider_charges')),
    sa.UniqueConstraint('charge_id', name=op.f('uq_portal_test_provider_charges_charge_id'))
    )
    op.create_table('portal_test_provider_setups',
    sa.Column('setup_id', sa.String(length=40), nullable=False),
    sa.Column('customer_ref', sa.String(length=40), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('return_url', sa.String(length=2000), nullable=False),
    sa.Column('saved_token', sa.String(length=40), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('setup_id', name=op.f('pk_portal_test_provider_setups'))
    )


def downgrade() -> None:
    op.drop_table('portal_test_provider_setups')
    op.drop_table('portal_test_provider_charges')
    with op.batch_alter_table('portal_test_provider_cards', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_portal_test_provider_cards_customer_ref'))

    op.drop_table('portal_test_provider_cards')
