"""commitment terms: a subscription's term and its product's commitment rules, and its seat additions

Issue 15: Pax8's `commitmentTerm {term, endDate}` and `/products/{id}/dependencies` commitment rules
(auto-renew, renewal window days, whether decreases and early cancellation are allowed, a fee), and
the instants seats were added (the 168-hour rule). New tables only: nothing existing changes.

Revision ID: 0006_commitment_terms
Revises: 0005_distributor_invoices
Create Date: 2026-12-01 23:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

from engine.store.types import DecimalText

revision: str = "0006_commitment_terms"
down_revision: str | None = "0005_distributor_invoices"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "commitment_term",
        sa.Column("subscription_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("term", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=True),
        sa.Column("auto_renew", sa.Boolean(), nullable=False),
        sa.Column("window_days_before", sa.Integer(), nullable=False),
        sa.Column("window_days_after", sa.Integer(), nullable=False),
        sa.Column("allow_decrease", sa.Boolean(), nullable=False),
        sa.Column("allow_early_cancellation", sa.Boolean(), nullable=False),
        sa.Column("cancellation_fee", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("subscription_id"),
    )
    op.create_table(
        "seat_addition",
        sa.Column("subscription_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("quantity", DecimalText(length=48), nullable=False),
        sa.PrimaryKeyConstraint("subscription_id", "seq"),
    )


def downgrade() -> None:
    op.drop_table("seat_addition")
    op.drop_table("commitment_term")
