"""access

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 13:06:39.797878
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('portal_outbox',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('recipient', sa.String(length=254), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=7), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.String(length=500), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'sent', 'dropped', 'failed')", name=op.f('ck_portal_outbox_status')),
    sa.CheckConstraint('attempts >= 0', name=op.f('ck_portal_outbox_attempts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_portal_outbox'))
    )
    with op.batch_alter_table('portal_outbox', schema=None) as batch_op:
        batch_op.create_index('ix_portal_outbox_due', ['status', 'next_attempt_at'], unique=False)

    op.create_table('portal_api_keys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('public_id', sa.String(length=40), nullable=False),
    sa.Column('business_id', sa.Integer(), nullable=False),
    sa.Column('mode', sa.String(length=4), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('hint', sa.String(length=24), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("mode IN ('test', 'live')", name=op.f('ck_portal_api_keys_mode')),
    sa.ForeignKeyConstraint(['business_id'], ['portal_businesses.id'], name=op.f('fk_portal_api_keys_business_id_portal_businesses')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_portal_api_keys')),
    sa.UniqueConstraint('key_hash', name=op.f('uq_portal_api_keys_key_hash')),
    sa.UniqueConstraint('public_id', name=op.f('uq_portal_api_keys_public_id'))
    )
    with op.batch_alter_table('portal_api_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_portal_api_keys_business_id'), ['business_id'], unique=False)

    op.create_table('portal_login_links',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('purpose', sa.String(length=14), nullable=False),
    sa.Column('business_id', sa.Integer(), nullable=False),
    sa.Column('mode', sa.String(length=4), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('return_url', sa.String(length=2000), nullable=True),
    sa.Column('new_email', sa.String(length=254), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("mode IN ('test', 'live')", name=op.f('ck_portal_login_links_mode')),
    sa.CheckConstraint("purpose IN ('email_login', 'portal_session', 'email_change')", name=op.f('ck_portal_login_links_purpose')),
    sa.CheckConstraint('expires_at > created_at', name=op.f('ck_portal_login_links_expiry')),
    sa.ForeignKeyConstraint(['business_id'], ['portal_businesses.id'], name=op.f('fk_portal_login_links_business_id_portal_businesses')),
    sa.ForeignKeyConstraint(['customer_id'], ['portal_customers.id'], name=op.f('fk_portal_login_links_customer_id_portal_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_portal_login_links')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_portal_login_links_token_hash'))
    )
    with op.batch_alter_table('portal_login_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_portal_login_links_customer_id'), ['customer_id'], unique=False)

    op.create_table('portal_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('business_id', sa.Integer(), nullable=False),
    sa.Column('mode', sa.String(length=4), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('return_url', sa.String(length=2000), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("mode IN ('test', 'live')", name=op.f('ck_portal_sessions_mode')),
    sa.CheckConstraint('expires_at > created_at', name=op.f('ck_portal_sessions_expiry')),
    sa.ForeignKeyConstraint(['business_id'], ['portal_businesses.id'], name=op.f('fk_portal_sessions_business_id_portal_businesses')),
    sa.ForeignKeyConstraint(['customer_id'], ['portal_customers.id'], name=op.f('fk_portal_sessions_customer_id_portal_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_portal_sessions')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_portal_sessions_token_hash'))
    )
    with op.batch_alter_table('portal_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_portal_sessions_customer_id'), ['customer_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('portal_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_portal_sessions_customer_id'))

    op.drop_table('portal_sessions')
    with op.batch_alter_table('portal_login_links', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_portal_login_links_customer_id'))

    op.drop_table('portal_login_links')
    with op.batch_alter_table('portal_api_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_portal_api_keys_business_id'))

    op.drop_table('portal_api_keys')
    with op.batch_alter_table('portal_outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_portal_outbox_due')

    op.drop_table('portal_outbox')
