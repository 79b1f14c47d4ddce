"""sync journal: one row per PSA line key (one writer per key) and the change set a row belongs to

The journal claimed by (key, fingerprint), so two operators with different plans for one key could
both claim it and both write (issue 11). From here a row is unique on its key alone; a later write
of the same key takes the row over (a new attempt). `change_set` groups the lines RULES.md §3 writes
together (a change's recurring update, prorates and extra months), so an interrupted set is resumed
as a whole. Older rows of a key (earlier fingerprints) are dropped, keeping the latest; the audit
trail keeps their history.

Revision ID: 0004_journal_by_key
Revises: 0003_plan_cache
Create Date: 2026-12-01 20:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0004_journal_by_key"
down_revision: str | None = "0003_plan_cache"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("DELETE FROM sync_journal WHERE id NOT IN (SELECT MAX(id) FROM sync_journal GROUP BY key)")
    with op.batch_alter_table("sync_journal", schema=None) as batch_op:
        batch_op.add_column(sa.Column("change_set", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.drop_constraint("uq_sync_journal_key_fingerprint", type_="unique")
        batch_op.create_unique_constraint("uq_sync_journal_key", ["key"])
        batch_op.create_index(batch_op.f("ix_sync_journal_change_set"), ["change_set"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sync_journal", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sync_journal_change_set"))
        batch_op.drop_constraint("uq_sync_journal_key", type_="unique")
        batch_op.create_unique_constraint("uq_sync_journal_key_fingerprint", ["key", "fingerprint"])
        batch_op.drop_column("change_set")
