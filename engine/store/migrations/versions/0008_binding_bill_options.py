"""binding bill options: a product binding's taxable flag and bill option

Issue 13: a binding carries *taxable* and *bill option* (seed 001's review rows "Bill Options:
Billable / Taxable") and they are written on every line it produces. `taxable` NULL = the PSA
product's default; `bill_option` one of billable | do_not_bill | no_charge (engine.scenario.BillOption),
existing bindings become "billable" — what every line was written as before. A PSA line keeps the
same two as its connector read them (NULL: not read / the PSA has no such field per line).

Revision ID: 0008_binding_bill_options
Revises: 0007_psa_invoiced
Create Date: 2026-12-02 04:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0008_binding_bill_options"
down_revision: str | None = "0007_psa_invoiced"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # batch mode: SQLite cannot ALTER a column away on the way down otherwise
    with op.batch_alter_table("product_binding") as batch:
        batch.add_column(sa.Column("taxable", sa.Boolean(), nullable=True))
        batch.add_column(
            sa.Column(
                "bill_option",
                sqlmodel.sql.sqltypes.AutoString(),
                nullable=False,
                server_default="billable",
            )
        )
    with op.batch_alter_table("psa_line") as batch:
        batch.add_column(sa.Column("taxable", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("bill_option", sqlmodel.sql.sqltypes.AutoString(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("psa_line") as batch:
        batch.drop_column("bill_option")
        batch.drop_column("taxable")
    with op.batch_alter_table("product_binding") as batch:
        batch.drop_column("bill_option")
        batch.drop_column("taxable")
