"""external ids: the merchant's ids and metadata on records, and provider webhook events

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 17:05:00.000000

Customers, subscriptions, invoices and payments take the id they have in the
merchant's system or processor (unique per business and mode) and a JSON
object of the merchant's own key-value pairs. Subscriptions and payments keep
their customer's business and mode, and invoices their customer's mode, so the
database itself holds an external id unique in its scope; existing rows take
their customer's. Webhook events are kept by id so a replayed one is ignored.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

MODE_CHECK = "mode IN ('test', 'live')"


def _take_customers(table: str, *columns: str) -> None:
    """Set ``columns`` of every row of ``table`` to its customer's."""
    customers = sa.table('portal_customers', sa.column('id'), *map(sa.column, columns))
    rows = sa.table(table, sa.column('customer_id'), *map(sa.column, columns))
    op.execute(
        rows.update().values({
            column: sa.select(customers.c[column])
            .where(customers.c.id == rows.c.customer_id)
            .scalar_subquery()
            for column in columns
        })
    )


def _add_external_columns(batch_op: Any) -> None:
    batch_op.add_column(sa.Column('external_id', sa.String(length=255), nullable=True))
    batch_op.add_column(sa.Column('metadata', sa.JSON(), server_default=sa.text("'{}'"), nullable=False))


def upgrade() -> None:
    op.create_table(
        'portal_webhook_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('provider', sa.String(length=40), nullable=False),
        sa.Column('event_id', sa.String(length=255), nullable=False),
        sa.Column('type', sa.String(length=100), nullable=False),
        sa.Column('business_id', sa.Integer(), nullable=False),
        sa.Column('mode', sa.String(length=4), nullable=False),
        sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(MODE_CHECK, name=op.f('ck_portal_webhook_events_mode')),
        sa.ForeignKeyConstraint(['business_id'], ['portal_businesses.id'], name=op.f('fk_portal_webhook_events_business_id_portal_businesses')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_portal_webhook_events')),
        sa.UniqueConstraint('provider', 'event_id', name=op.f('uq_portal_webhook_events_provider_event_id')),
    )
    with op.batch_alter_table('portal_customers', schema=None) as batch_op:
        _add_external_columns(batch_op)
        batch_op.create_unique_constraint(batch_op.f('uq_portal_customers_business_id_mode_external_id'), ['business_id', 'mode', 'external_id'])

    # The scope columns arrive empty, take their customer's values, then are required.
    with op.batch_alter_table('portal_invoices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mode', sa.String(length=4), nullable=True))
    _take_customers('portal_invoices', 'mode')
    with op.batch_alter_table('portal_invoices', schema=None) as batch_op:
        batch_op.alter_column('mode', existing_type=sa.String(length=4), nullable=False)
        _add_external_columns(batch_op)
        batch_op.create_check_constraint('mode', MODE_CHECK)
        batch_op.create_unique_constraint(batch_op.f('uq_portal_invoices_business_id_mode_external_id'), ['business_id', 'mode', 'external_id'])

    for table in ('portal_payments', 'portal_subscriptions'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('business_id', sa.Integer(), nullable=True))
            batch_op.add_column(sa.Column('mode', sa.String(length=4), nullable=True))
        _take_customers(table, 'business_id', 'mode')
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column('business_id', existing_type=sa.Integer(), nullable=False)
            batch_op.alter_column('mode', existing_type=sa.String(length=4), nullable=False)
            _add_external_columns(batch_op)
            batch_op.create_check_constraint('mode', MODE_CHECK)
            batch_op.create_unique_constraint(batch_op.f(f'uq_{table}_business_id_mode_external_id'), ['business_id', 'mode', 'external_id'])
            batch_op.create_foreign_key(batch_op.f(f'fk_{table}_business_id_portal_businesses'), 'portal_businesses', ['business_id'], ['id'])


def downgrade() -> None:
    for table in ('portal_subscriptions', 'portal_payments'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(batch_op.f(f'fk_{table}_business_id_portal_businesses'), type_='foreignkey')
            batch_op.drop_constraint(batch_op.f(f'uq_{table}_business_id_mode_external_id'), type_='unique')
            batch_op.drop_constraint(batch_op.f(f'ck_{table}_mode'), type_='check')
            batch_op.drop_column('metadata')
            batch_op.drop_column('external_id')
            batch_op.drop_column('mode')
            batch_op.drop_column('business_id')

    with op.batch_alter_table('portal_invoices', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_portal_invoices_business_id_mode_external_id'), type_='unique')
        batch_op.drop_constraint(batch_op.f('ck_portal_invoices_mode'), type_='check')
        batch_op.drop_column('metadata')
        batch_op.drop_column('external_id')
        batch_op.drop_column('mode')

    with op.batch_alter_table('portal_customers', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_portal_customers_business_id_mode_external_id'), type_='unique')
        batch_op.drop_column('metadata')
        batch_op.drop_column('external_id')

    op.drop_table('portal_webhook_events')
