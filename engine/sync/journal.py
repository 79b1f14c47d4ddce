"""The sync journal: one row per PSA write trueup intends, committed BEFORE the write is sent.

A row is the claim on a PSA line key: the row is unique on the key alone (one writer per key), so
two executors on one database (two operators) cannot both write a key — the second INSERT fails —
even when their plans differ (a vendor change between their refreshes): the executor then refuses
the second with "changed since your review — refresh". A later write of the key (next month's
update) takes the row over as a new attempt; `fingerprint`, `line` and `request` are then the new
line's. `change_set` names the set of lines RULES.md §3 writes together (a change's recurring
update, prorates and extra months; `<set>|<batch>`), claimed before any of them is sent, so that an
interrupted set is resumed as a whole (`unfinished_lines`).

States (`state`):
- `pending`  — claimed; the write may or may not have reached the PSA. Only a PSA lookup can tell.
              A pending row whose executor is gone (crash, kill) is resolved on the next start.
- `done`     — the PSA holds the line as intended (written by this row, or found there); the synced
              key and an audit event were committed in the same transaction.
- `failed`   — the PSA holds nothing from this attempt (it refused, or a lookup confirmed the write
              never landed); sending again is safe. `message` is the PSA's message.
- `conflict` — the PSA line differs from what the plan expected (edited by hand); nothing was sent.
              `found` holds the PSA's values, `request["expected"]` the plan's.

A terminal row (done/failed/conflict) is claimed again by a conditional UPDATE on `attempt` (the
optimistic-concurrency version column), so a retry later is race-free too.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, UniqueConstraint, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, col

from engine import audit
from engine.scenario import PsaLine
from engine.scrub import redacted_message
from engine.store import Store
from engine.store.tables import OverrideRow, PsaLineRow, SyncedKeyRow

PENDING, DONE, FAILED, CONFLICT = "pending", "done", "failed", "conflict"
PARTIAL_MARK = "_partial"  # in `unfinished_lines`: the row was interrupted part-way
STATES = (PENDING, DONE, FAILED, CONFLICT)
TERMINAL = (DONE, FAILED, CONFLICT)


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class SyncJournalRow(SQLModel, table=True):
    """One intended PSA write (see the module docstring for the states)."""

    __tablename__ = "sync_journal"
    __table_args__ = (
        UniqueConstraint("key", name="uq_sync_journal_key"),
        Index("ix_sync_journal_state_psa", "state", "psa"),
    )
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(index=True)
    fingerprint: str
    attempt: int = 1
    batch: str = Field(index=True)
    psa: str
    action: str
    kind: str
    agreement_id: str
    company_id: str
    company: str | None = None
    record_only: bool = False
    change_set: str | None = Field(default=None, index=True)
    line: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    request: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    state: str = PENDING
    outcome: str | None = None
    psa_line_id: str | None = None
    message: str | None = None
    found: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    owner: str
    user: str
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


@dataclass(frozen=True)
class Claim:
    """The result of `Journal.claim`: `row` is ours when `claimed`, else the row someone else holds."""

    claimed: bool
    row: SyncJournalRow


def jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def jsonable_object(value: dict[str, Any]) -> dict[str, Any]:
    """`jsonable` of a JSON object, typed as one."""
    return {k: jsonable(v) for k, v in value.items()}


def this_host() -> str:
    return socket.gethostname()


class Journal:
    """The journal's operations; each is one short transaction (never held across an await)."""

    def __init__(self, store: Store):
        self.store = store
        # Stores opened without migrations (in-memory) get the table here; a migrated one has it.
        SyncJournalRow.__table__.create(store.engine, checkfirst=True)  # type: ignore[attr-defined]  # SQLModel sets __table__ on table classes at runtime; its stubs do not declare it

    # --- claiming ----------------------------------------------------------------------------------

    def claim(
        self,
        *,
        key: str,
        fingerprint: str,
        batch: str,
        psa: str,
        action: str,
        kind: str,
        agreement_id: str,
        company_id: str,
        company: str | None,
        record_only: bool,
        line: dict[str, Any],
        request: dict[str, Any],
        owner: str,
        user: str,
        change_set: str | None = None,
    ) -> Claim:
        now = utcnow()
        row = SyncJournalRow(
            key=key,
            fingerprint=fingerprint,
            batch=batch,
            psa=psa,
            action=action,
            kind=kind,
            agreement_id=agreement_id,
            company_id=company_id,
            company=company,
            record_only=record_only,
            change_set=change_set,
            line=jsonable(line),
            request=jsonable(request),
            state=PENDING,
            owner=owner,
            user=user,
            created_at=now,
            updated_at=now,
        )
        try:
            with self.store.session() as s:
                s.add(row)
                s.commit()
            return Claim(True, row)
        except IntegrityError:
            existing = self.get_by_key(key)
            if existing is None:  # deleted meanwhile: extremely unlikely; let the caller retry
                raise
            return Claim(False, existing)

    def reclaim(
        self,
        row: SyncJournalRow,
        *,
        batch: str,
        owner: str,
        user: str,
        request: dict[str, Any],
        replace: dict[str, Any] | None = None,
    ) -> SyncJournalRow | None:
        """Take a terminal row for a new attempt; None when someone else changed it first.
        `replace`: the new line's values (fingerprint, line, action, kind, …) when it differs from
        the line the row was claimed for."""
        with self.store.session() as s:
            result = s.execute(
                update(SyncJournalRow)
                .where(
                    col(SyncJournalRow.id) == row.id,
                    col(SyncJournalRow.attempt) == row.attempt,
                    col(SyncJournalRow.state).in_(TERMINAL),
                )
                .values(
                    attempt=row.attempt + 1,
                    state=PENDING,
                    outcome=None,
                    message=None,
                    found=None,
                    batch=batch,
                    owner=owner,
                    user=user,
                    request=jsonable(request),
                    updated_at=utcnow(),
                    **{name: jsonable(value) for name, value in (replace or {}).items()},
                )
            )
            s.commit()
            if result.rowcount != 1:  # type: ignore[attr-defined]  # Session.execute is typed Result; an UPDATE gives a CursorResult (rowcount)
                return None
        return self.get(row.id)  # type: ignore[arg-type]  # a journaled row has its id (SQLModel types the autoincrement key int | None)

    # --- resolving ---------------------------------------------------------------------------------

    def _finish(self, s: Session, row: SyncJournalRow, **values: Any) -> bool:
        result = s.execute(
            update(SyncJournalRow)
            .where(
                col(SyncJournalRow.id) == row.id,
                col(SyncJournalRow.attempt) == row.attempt,
                col(SyncJournalRow.state) == PENDING,
            )
            .values(updated_at=utcnow(), **(values | redacted_message(values)))
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]  # Session.execute is typed Result, an UPDATE gives a CursorResult (rowcount)

    def mark_done(
        self,
        row: SyncJournalRow,
        *,
        outcome: str,
        psa_line: PsaLine | None,
        extra_lines: Iterable[PsaLine] = (),
        quantity: Decimal | None,
        synced_on: date,
        user: str,
        audit_action: str,
        before: dict[str, Any] | None,
        after: dict[str, Any],
        message: str | None = None,
        consume_override: bool = False,
        also_synced: Iterable[str] = (),
    ) -> bool:
        """Row → done, the synced key, the PSA lines as now written, and the audit event: one
        transaction. False (and nothing written) when the row was no longer ours to finish.
        `consume_override`: a create-new is done, so the line's override (create new / effective
        date) has served and is removed — else the next plan would replace the new line again."""
        psa_line_id = psa_line.id if psa_line is not None else None
        with self.store.session() as s, s.begin():
            if not self._finish(
                s, row, state=DONE, outcome=outcome, psa_line_id=psa_line_id, message=message
            ):
                return False
            s.merge(
                SyncedKeyRow(key=row.key, quantity=quantity, synced_on=synced_on, psa_line_id=psa_line_id)
            )
            for key in also_synced:  # zero-value prorates: recorded with their change (RULES.md §2)
                s.merge(SyncedKeyRow(key=key, quantity=None, synced_on=synced_on, psa_line_id=None))
            for line in (psa_line, *extra_lines):
                if line is not None:
                    s.merge(psa_line_row(line))
            if consume_override:
                s.execute(delete(OverrideRow).where(col(OverrideRow.key) == row.key))
            audit.record(
                s,
                audit_action,
                row.key,
                before=jsonable(before),
                after=jsonable(after),
                company=row.company,
                user=user,
            )
        return True

    def mark_failed(
        self,
        row: SyncJournalRow,
        *,
        message: str,
        user: str,
        outcome: str = "failed",
        audit_action: str = "sync.failed",
        after: dict[str, Any] | None = None,
    ) -> bool:
        with self.store.session() as s, s.begin():
            if not self._finish(s, row, state=FAILED, outcome=outcome, message=message[:2000]):
                return False
            audit.record(
                s,
                audit_action,
                row.key,
                before=None,
                after=jsonable({"message": message, **(after or {})}),
                company=row.company,
                user=user,
            )
        return True

    def mark_conflict(
        self, row: SyncJournalRow, *, expected: dict[str, Any], found: dict[str, Any], message: str, user: str
    ) -> bool:
        with self.store.session() as s, s.begin():
            if not self._finish(
                s, row, state=CONFLICT, outcome="conflict", message=message, found=jsonable(found)
            ):
                return False
            audit.record(
                s,
                "sync.conflict",
                row.key,
                before=jsonable(expected),
                after=jsonable(found),
                company=row.company,
                user=user,
            )
        return True

    # --- reading -----------------------------------------------------------------------------------

    def get(self, row_id: int) -> SyncJournalRow | None:
        with self.store.session() as s:
            return s.get(SyncJournalRow, row_id)

    def get_by_key(self, key: str, fingerprint: str | None = None) -> SyncJournalRow | None:
        """The key's row (one per key); with `fingerprint`, only if it was claimed for that line."""
        with self.store.session() as s:
            row = s.execute(select(SyncJournalRow).where(col(SyncJournalRow.key) == key)).scalars().first()
        if row is not None and fingerprint is not None and row.fingerprint != fingerprint:
            return None
        return row

    def unfinished_lines(self, psa: str) -> list[dict[str, Any]]:
        """The lines of change sets that were partly written: some row of the set is `done` (or was
        interrupted part-way: outcome `partial`), others are not (interrupted, refused, never sent). Those lines are owed and the next plan may
        no longer propose them (the recurring line already holds the new quantity), so the
        executor resumes them from here. Conflicts are left to the operator."""
        with self.store.session() as s:
            rows = list(
                s.execute(
                    select(SyncJournalRow)
                    .where(
                        col(SyncJournalRow.psa) == psa,
                        col(SyncJournalRow.change_set).is_not(None),
                    )
                    .order_by(col(SyncJournalRow.id))
                ).scalars()
            )
        sets: dict[str, list[SyncJournalRow]] = {}
        for row in rows:
            sets.setdefault(row.change_set or "", []).append(row)
        out: list[dict[str, Any]] = []
        for members in sets.values():
            if len(members) < 2 or not any(r.state == DONE or r.outcome == "partial" for r in members):
                continue
            out += [
                {**dict(r.line), PARTIAL_MARK: r.outcome == "partial"}
                for r in members
                if r.state == FAILED and not r.record_only
            ]
        return out

    def pending(self, psa: str | None = None) -> list[SyncJournalRow]:
        query = select(SyncJournalRow).where(col(SyncJournalRow.state) == PENDING)
        if psa is not None:
            query = query.where(col(SyncJournalRow.psa) == psa)
        with self.store.session() as s:
            return list(s.execute(query.order_by(col(SyncJournalRow.id))).scalars())

    def rows(self, *, psa: str | None = None, state: str | None = None) -> list[SyncJournalRow]:
        query = select(SyncJournalRow)
        if psa is not None:
            query = query.where(col(SyncJournalRow.psa) == psa)
        if state is not None:
            query = query.where(col(SyncJournalRow.state) == state)
        with self.store.session() as s:
            return list(s.execute(query.order_by(col(SyncJournalRow.id))).scalars())

    def last_batch_lines(self, psa: str) -> list[dict[str, Any]]:
        """The plan lines (as journaled) that the latest sync to `psa` wrote or found there."""
        with self.store.session() as s:
            latest = (
                s.execute(
                    select(col(SyncJournalRow.batch))
                    .where(col(SyncJournalRow.psa) == psa, col(SyncJournalRow.state) == DONE)
                    .order_by(col(SyncJournalRow.updated_at).desc(), col(SyncJournalRow.id).desc())
                    .limit(1)
                )
                .scalars()
                .first()
            )
            if latest is None:
                return []
            rows = s.execute(
                select(SyncJournalRow)
                .where(
                    col(SyncJournalRow.psa) == psa,
                    col(SyncJournalRow.batch) == latest,
                    col(SyncJournalRow.state) == DONE,
                )
                .order_by(col(SyncJournalRow.id))
            ).scalars()
            return [dict(row.line) for row in rows if not row.record_only]


def psa_line_row(line: PsaLine) -> PsaLineRow:
    """The store's copy of a PSA line, so a plan made from the store before the next refresh sees it."""
    source = line.source
    return PsaLineRow(
        id=line.id,
        agreement_id=line.agreement_id,
        product_id=line.product_id,
        kind=line.kind,
        quantity=line.quantity,
        unit_price=line.unit_price,
        unit_cost=line.unit_cost,
        effective_date=line.effective_date,
        cancelled_date=line.cancelled_date,
        description=line.description,
        metered=line.metered,
        has_source=source is not None,
        source_subscription_id=source.subscription_id if source else None,
        source_sub_product=source.sub_product if source else None,
        source_key=source.key if source else None,
        taxable=line.taxable,
        bill_option=line.bill_option,
    )


# --- who holds a pending row ---------------------------------------------------------------------

_LIVE_TOKENS: set[str] = set()


def owner_id(token: str) -> str:
    return f"{this_host()}|{os.getpid()}|{token}"


def register_live(token: str) -> None:
    _LIVE_TOKENS.add(token)


def unregister_live(token: str) -> None:
    _LIVE_TOKENS.discard(token)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def owner_alive(row: SyncJournalRow, *, lease_seconds: float, now: datetime | None = None) -> bool:
    """Whether the executor that holds a pending row may still be running. On this host it is
    known exactly whether the process is gone (and in this process, whether the executor's token is
    live); otherwise a row not touched within the lease is taken as abandoned."""
    host, _, rest = row.owner.partition("|")
    pid_text, _, token = rest.partition("|")
    if host == this_host() and pid_text.isdigit():
        pid = int(pid_text)
        if pid == os.getpid():
            return token in _LIVE_TOKENS
        if not _pid_alive(pid):
            return False
    age = ((now or utcnow()) - as_utc(row.updated_at)).total_seconds()
    return age < lease_seconds
