"""catalogue: products, prices, allowed switches, add-ons, and the self-service switches

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 18:00:00.000000

A business declares products and their prices per mode, which prices a
subscription may switch to, and add-on prices attached to subscriptions. A
subscription may be on a catalogue price and may hold a change scheduled for
later; existing subscriptions are on none and keep working. Businesses get the
self-service switches, all off for existing businesses as for new ones.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

MODE_CHECK = "mode IN ('test', 'live')"
SWITCHES = ('plan_changes', 'quantity_changes', 'add_ons', 'pause', 'cancellation_reasons', 'retention_offer')


def _scope_columns(table: str) -> list[Any]:
    """The columns and checks every record of a business in one mode has."""
    return [
        sa.Column('business_id', sa.Integer(), nullable=False),
        sa.Column('mode', sa.String(length=4), nullable=False),
        sa.Column('external_id', sa.String(length=255), nullable=True),
        sa.Column('metadata', sa.JSON(), server_default=sa.text("'{}'"), nullable=False),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(MODE_CHECK, name=op.f(f'ck_{table}_mode')),
        sa.ForeignKeyConstraint(['business_id'], ['portal_businesses.id'], name=op.f(f'fk_{table}_business_id_portal_businesses')),
        sa.PrimaryKeyConstraint('id', name=op.f(f'pk_{table}')),
        sa.UniqueConstraint('business_id', 'mode', 'external_id', name=op.f(f'uq_{table}_business_id_mode_external_id')),
        sa.UniqueConstraint('public_id', name=op.f(f'uq_{table}_public_id')),
    ]


def upgrade() -> None:
    op.create_table(
        'portal_products',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('public_id', sa.String(length=40), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        *_scope_columns('portal_products'),
        sa.CheckConstraint('length(name) > 0', name=op.f('ck_portal_products_name')),
        sa.UniqueConstraint('business_id', 'mode', 'name', name=op.f('uq_portal_products_business_id_mode_name')),
    )
    op.create_index(op.f('ix_portal_products_business_id'), 'portal_products', ['business_id'])
    op.create_table(
        'portal_prices',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('public_id', sa.String(length=40), nullable=False),
        sa.Column('product_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('amount', sa.Integer(), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('interval', sa.String(length=5), nullable=False),
        sa.Column('interval_count', sa.Integer(), nullable=False),
        sa.Column('add_on', sa.Boolean(), nullable=False),
        sa.Column('seats_minimum', sa.Integer(), nullable=True),
        sa.Column('seats_maximum', sa.Integer(), nullable=True),
        sa.Column('seats_step', sa.Integer(), nullable=True),
        *_scope_columns('portal_prices'),
        sa.CheckConstraint('amount >= 0', name=op.f('ck_portal_prices_amount')),
        sa.CheckConstraint("interval IN ('day', 'week', 'month', 'year')", name=op.f('ck_portal_prices_interval')),
        sa.CheckConstraint('interval_count >= 1', name=op.f('ck_portal_prices_interval_count')),
        sa.CheckConstraint(
            '(seats_minimum IS NULL AND seats_maximum IS NULL AND seats_step IS NULL) OR '
            '(seats_minimum IS NOT NULL AND seats_step IS NOT NULL AND '
            'seats_minimum >= 1 AND seats_step >= 1 AND '
            '(seats_maximum IS NULL OR seats_maximum >= seats_minimum))',
            name=op.f('ck_portal_prices_seats'),
        ),
        sa.CheckConstraint('length(currency) = 3 AND upper(currency) = currency', name=op.f('ck_portal_prices_currency')),
        sa.ForeignKeyConstraint(['product_id'], ['portal_products.id'], name=op.f('fk_portal_prices_product_id_portal_products')),
        sa.UniqueConstraint('product_id', 'name', name=op.f('uq_portal_prices_product_id_name')),
    )
    op.create_index(op.f('ix_portal_prices_product_id'), 'portal_prices', ['product_id'])
    op.create_table(
        'portal_price_switches',
        sa.Column('from_price_id', sa.Integer(), nullable=False),
        sa.Column('to_price_id', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint('from_price_id <> to_price_id', name=op.f('ck_portal_price_switches_distinct')),
        sa.ForeignKeyConstraint(['from_price_id'], ['portal_prices.id'], name=op.f('fk_portal_price_switches_from_price_id_portal_prices')),
        sa.ForeignKeyConstraint(['to_price_id'], ['portal_prices.id'], name=op.f('fk_portal_price_switches_to_price_id_portal_prices')),
        sa.PrimaryKeyConstraint('from_price_id', 'to_price_id', name=op.f('pk_portal_price_switches')),
    )
    op.create_table(
        'portal_subscription_add_ons',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('subscription_id', sa.Integer(), nullable=False),
        sa.Column('price_id', sa.Integer(), nullable=False),
        sa.Column('quantity', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint('quantity >= 1', name=op.f('ck_portal_subscription_add_ons_quantity')),
        sa.ForeignKeyConstraint(['price_id'], ['portal_prices.id'], name=op.f('fk_portal_subscription_add_ons_price_id_portal_prices')),
        sa.ForeignKeyConstraint(['subscription_id'], ['portal_subscriptions.id'], name=op.f('fk_portal_subscription_add_ons_subscription_id_portal_subscriptions')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_portal_subscription_add_ons')),
        sa.UniqueConstraint('subscription_id', 'price_id', name=op.f('uq_portal_subscription_add_ons_subscription_id_price_id')),
    )
    op.create_index(op.f('ix_portal_subscription_add_ons_subscription_id'), 'portal_subscription_add_ons', ['subscription_id'])

    # Existing businesses take the defaults of new ones: every switch off.
    with op.batch_alter_table('portal_businesses', schema=None) as batch_op:
        for switch in SWITCHES:
            batch_op.add_column(sa.Column(switch, sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('downgrades_at', sa.String(length=10), server_default='period_end', nullable=False))
        batch_op.add_column(sa.Column('proration', sa.String(length=7), server_default='none', nullable=False))
        batch_op.create_check_constraint('downgrades_at', "downgrades_at IN ('now', 'period_end')")
        batch_op.create_check_constraint('proration', "proration IN ('prorate', 'none')")

    with op.batch_alter_table('portal_subscriptions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('price_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('pending_price_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('pending_quantity', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('pending_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_check_constraint('pending_quantity', 'pending_quantity >= 1')
        batch_op.create_check_constraint(
            'pending_change', '(pending_at IS NULL) = (pending_price_id IS NULL AND pending_quantity IS NULL)'
        )
        batch_op.create_foreign_key(batch_op.f('fk_portal_subscriptions_price_id_portal_prices'), 'portal_prices', ['price_id'], ['id'])
        batch_op.create_foreign_key(batch_op.f('fk_portal_subscriptions_pending_price_id_portal_prices'), 'portal_prices', ['pending_price_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('portal_subscriptions', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_portal_subscriptions_pending_price_id_portal_prices'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_portal_subscriptions_price_id_portal_prices'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('ck_portal_subscriptions_pending_change'), type_='check')
        batch_op.drop_constraint(batch_op.f('ck_portal_subscriptions_pending_quantity'), type_='check')
        for column in ('pending_at', 'pending_quantity', 'pending_price_id', 'price_id'):
            batch_op.drop_column(column)

    with op.batch_alter_table('portal_businesses', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_portal_businesses_proration'), type_='check')
        batch_op.drop_constraint(batch_op.f('ck_portal_businesses_downgrades_at'), type_='check')
        for column in ('proration', 'downgrades_at', *reversed(SWITCHES)):
            batch_op.drop_column(column)

    op.drop_index(op.f('ix_portal_subscription_add_ons_subscription_id'), table_name='portal_subscription_add_ons')
    op.drop_table('portal_subscription_add_ons')
    op.drop_table('portal_price_switches')
    op.drop_index(op.f('ix_portal_prices_product_id'), table_name='portal_prices')
    op.drop_table('portal_prices')
    op.drop_index(op.f('ix_portal_products_business_id'), table_name='portal_products')
    op.drop_table('portal_products')
