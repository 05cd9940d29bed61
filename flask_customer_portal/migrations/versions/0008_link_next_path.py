"""link next path: the portal page a sign-in link opens after signing in

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 17:55:00.000000

A link can open one portal page after signing in: an action of a deep link
(a subscription's payment method, an invoice, cancelling) or the page a
signed-out customer had bookmarked. The path is kept with the link, on the
server, so nobody can change it in the emailed URL. Existing links open the
overview, as they always did.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('portal_login_links', schema=None) as batch_op:
        batch_op.add_column(sa.Column('next_path', sa.String(length=2000), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('portal_login_links', schema=None) as batch_op:
        batch_op.drop_column('next_path')
