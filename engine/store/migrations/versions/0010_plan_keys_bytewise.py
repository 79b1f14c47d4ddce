"""plan keys compared byte by byte: the key columns read by range use the "C" collation on PostgreSQL

A customer's synced keys, ignores and overrides are read as primary-key ranges, `<id>:` ≤ key <
`<id>;` (engine.store.customer_scope, `Store.long_synced_keys`), which holds only when the column
orders text by its bytes, as SQLite does. A PostgreSQL database made with a linguistic collation
(en_US.UTF-8, the default of many servers and of managed services; ICU `en-US`) ignores the
punctuation on a first pass, so the range held nothing: the per-customer recompute lost the
customer's synced keys and proposed its synced prorates and extra months again (checked on
PostgreSQL 15: `'abc:recurring' >= 'abc:' AND < 'abc;'` is false under "en-US-x-icu"). With the
column in "C", the comparison and its primary-key index agree with SQLite's, whatever the
database's default. SQLite is left as it is (its BINARY collation already compares bytes).

Revision ID: 0010_plan_keys_bytewise
Revises: 0009_subscription_gone
Create Date: 2026-12-02 23:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010_plan_keys_bytewise"
down_revision: str | None = "0009_subscription_gone"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEYED = ("synced_key", "ignore", "override")  # engine.store.tables.PLAN_KEY_TABLES


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in KEYED:
        op.execute(f'ALTER TABLE "{table}" ALTER COLUMN "key" TYPE VARCHAR COLLATE "C"')


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in KEYED:
        op.execute(f'ALTER TABLE "{table}" ALTER COLUMN "key" TYPE VARCHAR COLLATE "default"')
