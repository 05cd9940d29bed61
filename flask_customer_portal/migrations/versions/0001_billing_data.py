"""billing data

Revision ID: 0001
Revises:
Create Date: 2026-11-25 12:56:42.522040
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('portal_businesses',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('public_id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('support_email', sa.String(length=254), nullable=True),
    sa.Column('address', sa.Text(), nullable=True),
    sa.Column('tax_id', sa.String(length=64), nullable=True),
    sa.Column('logo', sa.LargeBinary(), nullable=True),
    sa.Column('brand_color', sa.String(length=7), nullable=True),
    sa.Column('default_locale', sa.String(length=16), nullable=False),
    sa.Column('invoice_prefix', sa.String(length=12), nullable=False),
    sa.Column('invoice_counter_live', sa.Integer(), nullable=False),
    sa.Column('invoice_counter_test', sa.Integer(), nullable=False),
    sa.Column('cancel_at_period_end', sa.Boolean(), nullable=False),
    sa.Column('cancel_now', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("brand_color IS NULL OR (length(brand_color) = 7 AND substr(brand_color, 1, 1) = '#')", name=op.f('ck_portal_businesses_brand_color')),
    sa.CheckConstraint('cancel_at_period_end OR cancel_now', name=op.f('ck_portal_businesses_cancel_options')),
    sa.CheckConstraint('invoice_counter_live >= 0 AND invoice_counter_test >= 0', name=op.f('ck_portal_businesses_invoice_counters')),
    sa.CheckConstraint('length(name) > 0', name=op.f('ck_portal_businesses_name')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_portal_businesses')),
    sa.UniqueConstraint('public_id', name=op.f('uq_portal_businesses_public_id'))
    )
    op.create_table('portal_customers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('public_id', sa.String(length=40), nullable=False),
    sa.Column('business_id', sa.Integer(), nullable=False),
    sa.Column('mode', sa.String(length=4), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('phone', sa.String(length=20), nullable=True),
    sa.Column('locale', sa.String(length=16), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("email = lower(email) AND email LIKE '%_@_%'", name=op.f('ck_portal_customers_email')),
    sa.CheckConstraint("mode IN ('test', 'live')", name=op.f('ck_portal_customers_mode')),
    sa.ForeignKeyConstraint(['business_id'], ['portal_businesses.id'], name=op.f('fk_portal_customers_business_id_portal_businesses')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_portal_customers')),
    sa.UniqueConstraint('business_id', 'mode', 'email', name=op.f('uq_portal_customers_business_id_mode_email')),
    sa.UniqueConstraint('public_id', name=op.f('uq_portal_customers_public_id'))
    )
    with op.batch_alter_table('portal_customers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_portal_customers_business_id'), ['business_id'], unique=False)

    op.create_table('portal_payment_methods',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('public_id', sa.String(length=40), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('provider_token', sa.String(length=255), nullable=False),
    sa.Column('brand', sa.String(length=20), nullable=False),
    sa.Column('last4', sa.String(length=4), nullable=False),
    sa.Column('exp_month', sa.Integer(), nullable=False),
    sa.Column('exp_year', sa.Integer(), nullable=False),
    sa.Column('is_default', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('exp_month BETWEEN 1 AND 12', name=op.f('ck_portal_payment_methods_exp_month')),
    sa.CheckConstraint('exp_year BETWEEN 2000 AND 2999', name=op.f('ck_portal_payment_methods_exp_year')),
    sa.CheckConstraint('length(last4) = 4', name=op.f('ck_portal_payment_methods_last4')),
    sa.ForeignKeyConstraint(['customer_id'], ['portal_customers.id'], name=op.f('fk_portal_payment_methods_customer_id_portal_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_portal_payment_methods')),
    sa.UniqueConstraint('customer_id', 'provider_token', name=op.f('uq_portal_payment_methods_customer_id_provider_token')),
    sa.UniqueConstraint('public_id', name=op.f('uq_portal_payment_methods_public_id'))
    )
    with op.batch_alter_table('portal_payment_methods', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_portal_payment_methods_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index('ix_portal_payment_methods_one_default', ['customer_id'], unique=True, sqlite_where=sa.text('is_default'), postgresql_where=sa.text('is_default'))

    op.create_table('portal_subscriptions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('public_id', sa.String(length=40), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('product', sa.String(length=200), nullable=False),
    sa.Column('plan', sa.String(length=200), nullable=False),
    sa.Column('price_amount', sa.Integer(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('interval', sa.String(length=5), nullable=False),
    sa.Column('interval_count', sa.Integer(), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('current_period_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('current_period_end', sa.DateTime(timezone=True), nullable=False),
    sa.Column('next_billing_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancel_at_period_end', sa.Boolean(), nullable=False),
    sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('payment_method_id', sa.Integer(), nullable=True),
    sa.CheckConstraint("interval IN ('day', 'week', 'month', 'year')", name=op.f('ck_portal_subscriptions_interval')),
    sa.CheckConstraint("status IN ('pending', 'active', 'on_hold', 'cancelled', 'expired', 'failed')", name=op.f('ck_portal_subscriptions_status')),
    sa.CheckConstraint('current_period_end > current_period_start', name=op.f('ck_portal_subscriptions_period')),
    sa.CheckConstraint('interval_count >= 1', name=op.f('ck_portal_subscriptions_interval_count')),
    sa.CheckConstraint('length(currency) = 3 AND upper(currency) = currency', name=op.f('ck_portal_subscriptions_currency')),
    sa.CheckConstraint('length(product) > 0', name=op.f('ck_portal_subscriptions_product')),
    sa.CheckConstraint('price_amount >= 0', name=op.f('ck_portal_subscriptions_price_amount')),
    sa.CheckConstraint('quantity >= 1', name=op.f('ck_portal_subscriptions_quantity')),
    sa.ForeignKeyConstraint(['customer_id'], ['portal_customers.id'], name=op.f('fk_portal_subscriptions_customer_id_portal_customers')),
    sa.ForeignKeyConstraint(['payment_method_id'], ['portal_payment_methods.id'], name=op.f('fk_portal_subscriptions_payment_method_id_portal_payment_methods')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_portal_subscriptions')),
    sa.UniqueConstraint('public_id', name=op.f('uq_portal_subscriptions_public_id'))
    )
    with op.batch_alter_table('portal_subscriptions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_portal_subscriptions_customer_id'), ['customer_id'], unique=False)

    op.create_table('portal_invoices',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('public_id', sa.String(length=40), nullable=False),
    sa.Column('business_id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('subscription_id', sa.Integer(), nullable=True),
    sa.Column('number', sa.String(length=40), nullable=False),
    sa.Column('status', sa.String(length=13), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('subtotal', sa.Integer(), nullable=False),
    sa.Column('tax', sa.Integer(), nullable=False),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('paid_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('business_snapshot', sa.JSON(), nullable=False),
    sa.Column('customer_snapshot', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status <> 'paid' OR paid_at IS NOT NULL", name=op.f('ck_portal_invoices_paid_at')),
    sa.CheckConstraint("status IN ('draft', 'open', 'paid', 'void', 'uncollectible')", name=op.f('ck_portal_invoices_status')),
    sa.CheckConstraint('length(currency) = 3 AND upper(currency) = currency', name=op.f('ck_portal_invoices_currency')),
    sa.CheckConstraint('subtotal >= 0 AND tax >= 0', name=op.f('ck_portal_invoices_amounts')),
    sa.CheckConstraint('total = subtotal + tax', name=op.f('ck_portal_invoices_total')),
    sa.ForeignKeyConstraint(['business_id'], ['portal_businesses.id'], name=op.f('fk_portal_invoices_business_id_portal_businesses')),
    sa.ForeignKeyConstraint(['customer_id'], ['portal_customers.id'], name=op.f('fk_portal_invoices_customer_id_portal_customers')),
    sa.ForeignKeyConstraint(['subscription_id'], ['portal_subscriptions.id'], name=op.f('fk_portal_invoices_subscription_id_portal_subscriptions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_portal_invoices')),
    sa.UniqueConstraint('business_id', 'number', name=op.f('uq_portal_invoices_business_id_number')),
    sa.UniqueConstraint('public_id', name=op.f('uq_portal_invoices_public_id'))
    )
    with op.batch_alter_table('portal_invoices', schema=None) as batch_op:
        batch_op.create_index('ix_portal_invoices_history', ['customer_id', 'issued_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_portal_invoices_subscription_id'), ['subscription_id'], unique=False)

    op.create_table('portal_license_keys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('public_id', sa.String(length=40), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('subscription_id', sa.Integer(), nullable=True),
    sa.Column('key', sa.String(length=128), nullable=False),
    sa.Column('product', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('activation_limit', sa.Integer(), nullable=True),
    sa.Column('activations', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('active', 'inactive', 'expired', 'revoked')", name=op.f('ck_portal_license_keys_status')),
    sa.CheckConstraint('activation_limit IS NULL OR activation_limit >= 1', name=op.f('ck_portal_license_keys_limit')),
    sa.CheckConstraint('activations >= 0 AND (activation_limit IS NULL OR activations <= activation_limit)', name=op.f('ck_portal_license_keys_activations')),
    sa.CheckConstraint('length(key) >= 8', name=op.f('ck_portal_license_keys_key')),
    sa.ForeignKeyConstraint(['customer_id'], ['portal_customers.id'], name=op.f('fk_portal_license_keys_customer_id_portal_customers')),
    sa.ForeignKeyConstraint(['subscription_id'], ['portal_subscriptions.id'], name=op.f('fk_portal_license_keys_subscription_id_portal_subscriptions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_portal_license_keys')),
    sa.UniqueConstraint('key', name=op.f('uq_portal_license_keys_key')),
    sa.UniqueConstraint('public_id', name=op.f('uq_portal_license_keys_public_id'))
    )
    with op.batch_alter_table('portal_license_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_portal_license_keys_customer_id'), ['customer_id'], unique=False)

    op.create_table('portal_invoice_lines',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('invoice_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('description', sa.String(length=500), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('unit_amount', sa.Integer(), nullable=False),
    sa.Column('amount', sa.Integer(), nullable=False),
    sa.CheckConstraint('amount = quantity * unit_amount', name=op.f('ck_portal_invoice_lines_amount')),
    sa.CheckConstraint('length(description) > 0', name=op.f('ck_portal_invoice_lines_description')),
    sa.CheckConstraint('quantity >= 1', name=op.f('ck_portal_invoice_lines_quantity')),
    sa.CheckConstraint('unit_amount >= 0', name=op.f('ck_portal_invoice_lines_unit_amount')),
    sa.ForeignKeyConstraint(['invoice_id'], ['portal_invoices.id'], name=op.f('fk_portal_invoice_lines_invoice_id_portal_invoices')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_portal_invoice_lines')),
    sa.UniqueConstraint('invoice_id', 'position', name=op.f('uq_portal_invoice_lines_invoice_id_position'))
    )
    op.create_table('portal_payments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('public_id', sa.String(length=40), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('invoice_id', sa.Integer(), nullable=True),
    sa.Column('subscription_id', sa.Integer(), nullable=True),
    sa.Column('payment_method_id', sa.Integer(), nullable=True),
    sa.Column('amount', sa.Integer(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=15), nullable=False),
    sa.Column('provider_reference', sa.String(length=255), nullable=True),
    sa.Column('idempotency_key', sa.String(length=255), nullable=True),
    sa.Column('failure_reason', sa.String(length=500), nullable=True),
    sa.Column('action_url', sa.String(length=2000), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('pending', 'requires_action', 'succeeded', 'failed')", name=op.f('ck_portal_payments_status')),
    sa.CheckConstraint('amount > 0', name=op.f('ck_portal_payments_amount')),
    sa.CheckConstraint('length(currency) = 3 AND upper(currency) = currency', name=op.f('ck_portal_payments_currency')),
    sa.ForeignKeyConstraint(['customer_id'], ['portal_customers.id'], name=op.f('fk_portal_payments_customer_id_portal_customers')),
    sa.ForeignKeyConstraint(['invoice_id'], ['portal_invoices.id'], name=op.f('fk_portal_payments_invoice_id_portal_invoices')),
    sa.ForeignKeyConstraint(['payment_method_id'], ['portal_payment_methods.id'], name=op.f('fk_portal_payments_payment_method_id_portal_payment_methods')),
    sa.ForeignKeyConstraint(['subscription_id'], ['portal_subscriptions.id'], name=op.f('fk_portal_payments_subscription_id_portal_subscriptions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_portal_payments')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_portal_payments_idempotency_key')),
    sa.UniqueConstraint('public_id', name=op.f('uq_portal_payments_public_id'))
    )
    with op.batch_alter_table('portal_payments', schema=None) as batch_op:
        batch_op.create_index('ix_portal_payments_history', ['customer_id', 'created_at'], unique=False)
        batch_op.create_index('ix_portal_payments_one_open_attempt', ['subscription_id'], unique=True, sqlite_where=sa.text("status IN ('pending', 'requires_action')"), postgresql_where=sa.text("status IN ('pending', 'requires_action')"))
        batch_op.create_index(batch_op.f('ix_portal_payments_invoice_id'), ['invoice_id'], unique=False)

    op.create_table('portal_refunds',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('public_id', sa.String(length=40), nullable=False),
    sa.Column('payment_id', sa.Integer(), nullable=False),
    sa.Column('amount', sa.Integer(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=9), nullable=False),
    sa.Column('provider_reference', sa.String(length=255), nullable=True),
    sa.Column('idempotency_key', sa.String(length=255), nullable=True),
    sa.Column('reason', sa.String(length=500), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name=op.f('ck_portal_refunds_status')),
    sa.CheckConstraint('amount > 0', name=op.f('ck_portal_refunds_amount')),
    sa.CheckConstraint('length(currency) = 3 AND upper(currency) = currency', name=op.f('ck_portal_refunds_currency')),
    sa.ForeignKeyConstraint(['payment_id'], ['portal_payments.id'], name=op.f('fk_portal_refunds_payment_id_portal_payments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_portal_refunds')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_portal_refunds_idempotency_key')),
    sa.UniqueConstraint('public_id', name=op.f('uq_portal_refunds_public_id'))
    )
    with op.batch_alter_table('portal_refunds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_portal_refunds_payment_id'), ['payment_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('portal_refunds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_portal_refunds_payment_id'))

    op.drop_table('portal_refunds')
    with op.batch_alter_table('portal_payments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_portal_payments_invoice_id'))
        batch_op.drop_index('ix_portal_payments_one_open_attempt', sqlite_where=sa.text("status IN ('pending', 'requires_action')"), postgresql_where=sa.text("status IN ('pending', 'requires_action')"))
        batch_op.drop_index('ix_portal_payments_history')

    op.drop_table('portal_payments')
    op.drop_table('portal_invoice_lines')
    with op.batch_alter_table('portal_license_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_portal_license_keys_customer_id'))

    op.drop_table('portal_license_keys')
    with op.batch_alter_table('portal_invoices', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_portal_invoices_subscription_id'))
        batch_op.drop_index('ix_portal_invoices_history')

    op.drop_table('portal_invoices')
    with op.batch_alter_table('portal_subscriptions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_portal_subscriptions_customer_id'))

    op.drop_table('portal_subscriptions')
    with op.batch_alter_table('portal_payment_methods', schema=None) as batch_op:
        batch_op.drop_index('ix_portal_payment_methods_one_default', sqlite_where=sa.text('is_default'), postgresql_where=sa.text('is_default'))
        batch_op.drop_index(batch_op.f('ix_portal_payment_methods_customer_id'))

    op.drop_table('portal_payment_methods')
    with op.batch_alter_table('portal_customers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_portal_customers_business_id'))

    op.drop_table('portal_customers')
    op.drop_table('portal_businesses')
