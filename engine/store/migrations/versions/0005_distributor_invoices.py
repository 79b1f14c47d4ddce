"""distributor invoices and their items (the three-way check, issue 14), and the margin marks

Revision ID: 0005_distributor_invoices
Revises: 0004_journal_by_key
Create Date: 2026-12-01 23:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import engine.store.types

revision: str = "0005_distributor_invoices"
down_revision: str | None = "0004_journal_by_key"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

String = sqlmodel.sql.sqltypes.AutoString


def _money(name: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, engine.store.types.DecimalText(length=48), nullable=False)


def upgrade() -> None:
    op.create_table(
        "distributor_invoice",
        sa.Column("id", String(), nullable=False),
        sa.Column("month", String(), nullable=False),
        sa.Column("invoice_date", sa.Date(), nullable=False),
        sa.Column("status", String(), nullable=False),
        _money("total"),
        sa.Column("currency", String(), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_distributor_invoice_month"), "distributor_invoice", ["month"], unique=False)
    op.create_table(
        "distributor_invoice_item",
        sa.Column("id", String(), nullable=False),
        sa.Column("invoice_id", String(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("type", String(), nullable=False),
        sa.Column("term", String(), nullable=True),
        sa.Column("company_id", String(), nullable=True),
        sa.Column("subscription_id", String(), nullable=True),
        sa.Column("product_id", String(), nullable=True),
        sa.Column("product_name", String(), nullable=False),
        sa.Column("start_period", sa.Date(), nullable=True),
        sa.Column("end_period", sa.Date(), nullable=True),
        _money("quantity"),
        _money("price"),
        _money("cost"),
        _money("cost_total"),
        _money("sub_total"),
        sa.Column("currency", String(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_invoice_item_invoice_seq", "distributor_invoice_item", ["invoice_id", "seq"], unique=False
    )
    op.create_index(
        op.f("ix_distributor_invoice_item_subscription_id"),
        "distributor_invoice_item",
        ["subscription_id"],
        unique=False,
    )
    op.create_table(
        "margin_mark",
        sa.Column("subscription_id", String(), nullable=False),
        sa.Column("mark", String(), nullable=False),
        sa.Column("by", String(), nullable=False),
        sa.Column("on", sa.Date(), nullable=False),
        sa.Column("reason", String(), nullable=True),
        sa.PrimaryKeyConstraint("subscription_id"),
    )


def downgrade() -> None:
    op.drop_table("margin_mark")
    op.drop_index(op.f("ix_distributor_invoice_item_subscription_id"), table_name="distributor_invoice_item")
    op.drop_index("ix_invoice_item_invoice_seq", table_name="distributor_invoice_item")
    op.drop_table("distributor_invoice_item")
    op.drop_index(op.f("ix_distributor_invoice_month"), table_name="distributor_invoice")
    op.drop_table("distributor_invoice")
