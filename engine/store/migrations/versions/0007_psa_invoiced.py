"""what the PSA invoiced: the lines of the invoices it issued, per PSA and month (issue 14 item 2)

New table only: nothing existing changes.

Revision ID: 0007_psa_invoiced
Revises: 0006_commitment_terms
Create Date: 2026-12-02 04:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

from engine.store.types import DecimalText

revision: str = "0007_psa_invoiced"
down_revision: str | None = "0006_commitment_terms"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

String = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        "psa_invoice_line",
        sa.Column("psa", String(), nullable=False),
        sa.Column("invoice_id", String(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("month", String(), nullable=False),
        sa.Column("invoice_number", String(), nullable=False),
        sa.Column("invoice_date", sa.Date(), nullable=False),
        sa.Column("company_id", String(), nullable=False),
        sa.Column("agreement_id", String(), nullable=True),
        sa.Column("line_id", String(), nullable=True),
        sa.Column("product_id", String(), nullable=True),
        sa.Column("description", String(), nullable=False),
        sa.Column("quantity", DecimalText(length=48), nullable=False),
        sa.Column("unit_price", DecimalText(length=48), nullable=False),
        sa.Column("amount", DecimalText(length=48), nullable=False),
        sa.Column("currency", String(), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("psa", "invoice_id", "seq"),
    )
    op.create_index("ix_psa_invoice_line_psa_month", "psa_invoice_line", ["psa", "month"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_psa_invoice_line_psa_month", table_name="psa_invoice_line")
    op.drop_table("psa_invoice_line")
