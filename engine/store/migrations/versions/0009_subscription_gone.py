"""subscription gone: a subscription the vendor no longer lists is kept, marked gone

Issue 14 item 4: a subscription deleted at the vendor used to vanish from the store on a full
refresh, so `vendor_subscription_gone` (engine.rules.leaks) could never see the PSA line that still
bills it. The store now keeps it with `gone` set. One column, false for every existing row.

Revision ID: 0009_subscription_gone
Revises: 0008_binding_bill_options
Create Date: 2026-12-02 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_subscription_gone"
down_revision: str | None = "0008_binding_bill_options"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("subscription") as batch:
        batch.add_column(sa.Column("gone", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("subscription") as batch:
        batch.drop_column("gone")
