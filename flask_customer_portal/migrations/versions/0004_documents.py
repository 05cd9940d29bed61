"""documents: rendered invoice PDFs, kept by the checksum of what they show

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 11:17:23.955132
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('portal_documents',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('media_type', sa.String(length=100), nullable=False),
    sa.Column('body', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_portal_documents'))
    )


def downgrade() -> None:
    op.drop_table('portal_documents')
