"""The sync executor: writes plan lines into the PSA so that none is written twice, none is lost,
and the journal always says what happened.

For each line:
0. **Change sets** — lines are written by change set (`PlanLine.change_set`: a seat
   subscription's recurring update or cancel, its prorates and extra months, RULES.md §3); every
   line of a set is claimed before any is sent, and a cancel stops after the set in flight. The
   unwritten lines of a set an earlier sync left half-written (journal `unfinished_lines`) are
   resumed first, as that sync planned them, even when the new plan no longer proposes them.
1. **Claim** — a journal row (state `pending`, the intended request) is inserted and committed
   before anything is sent. The row is unique on the line key alone (one writer per key): a
   second executor with the same line backs off (`already_there` when the PSA has it, `skipped`
   while another sync writes it); one with a different plan for the key is `refused` ("changed
   since your review — refresh"), as is a create whose key the PSA already holds from a sync of
   another plan.
2. **Inspect** — the PSA is read first. Creates: `find_line(agreement, key)` (the key travels in
   a field the PSA keeps); found → `already_there`. Updates and cancels: the line is re-read and
   compared with what the plan expected (`previous_quantity`; the prices too for kinds whose
   price the plan keeps): edited by hand → `conflict` with both values, nothing is sent.
3. **Write** through the connector — create, update, cancel (an update with a cancelled date), or
   create-new (create the new line, then cancel `replaces_line_id` the day before it starts).
   A failure that may have reached the PSA (5xx, timeout: `ServiceError.sent`) is resolved by
   inspecting again — never by a blind re-send; only a write the PSA provably does not hold is
   sent again (at most `max_sends` times). A refusal (`ServiceError.rejected`) → `failed` with the
   PSA's message, and the batch goes on. 429s are retried (honouring Retry-After) by the http layer.
4. **Record** — journal row `done` + the PSA id, the synced key (`SyncedKeyRow`), the store's copy
   of the PSA line and an audit event, in one transaction. (`failed`/`conflict` likewise.)

Record-only lines (zero-value one-time lines) are journaled and marked synced without a PSA write.

**Recovery**: before anything is sent, every `pending` row left by an executor that is gone is
resolved by inspecting the PSA: found → `done` (synced key recorded); not there → `failed`
("nothing was written", safe to send again); changed by someone → `conflict`. If one cannot be
checked (the PSA is unreachable) nothing is sent in this run.

**Cancel**: the `cancel` event, or the task being cancelled (Ctrl-C under `asyncio.run`), stops
after the line in flight has been written and recorded; the remaining lines are `skipped`. A
`KeyboardInterrupt`/kill inside a write leaves its row `pending`, which the next start resolves.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

import httpx
from sqlalchemy import select

from engine.audit import operator as current_operator
from engine.connectors.base import LineUpdate, LineWrite, PsaConnector, ServiceError
from engine.months import last_of_month
from engine.plan import LineKind, PlanLine
from engine.scenario import PsaLine
from engine.store import Store
from engine.store.tables import VendorCompanyRow
from engine.sync.journal import (
    DONE,
    PARTIAL_MARK,
    PENDING,
    Journal,
    SyncJournalRow,
    jsonable_object,
    owner_alive,
    owner_id,
    register_live,
    unregister_live,
)
from engine.verify import planned_quantity

log = logging.getLogger(__name__)

# Kinds whose update carries new prices (the plan's prices are the values to write); for every
# other kind the plan keeps the PSA line's prices, so a different price in the PSA is a hand edit.
# A price update (engine.rules.leaks) writes its new unit price and cost too.
PRICE_WRITING_KINDS = frozenset({LineKind.USAGE_SUMMARY, LineKind.USAGE, LineKind.PRICE})


class Outcome(StrEnum):
    WRITTEN = "written"
    ALREADY_THERE = "already_there"
    CONFLICT = "conflict"
    FAILED = "failed"
    SKIPPED = "skipped"
    REFUSED = "refused"  # another operator's plan holds the key: "changed since your review — refresh"


REFUSED_MESSAGE = "changed since your review — refresh"


@dataclass(frozen=True)
class LineOutcome:
    key: str
    outcome: Outcome
    action: str
    kind: str = ""
    company: str | None = None
    description: str = ""
    psa_line_id: str | None = None
    message: str = ""
    expected: dict[str, Any] | None = None
    found: dict[str, Any] | None = None
    recovered: bool = False
    record_only: bool = False
    journal_state: str | None = None


@dataclass
class SyncReport:
    psa: str
    batch: str
    outcomes: list[LineOutcome] = field(default_factory=list)
    recovered: list[LineOutcome] = field(default_factory=list)
    cancelled: bool = False
    blocked: str | None = None
    halted: str | None = None

    def counts(self) -> dict[str, int]:
        counts = {o.value: 0 for o in Outcome}
        for item in self.outcomes:
            counts[item.outcome.value] += 1
        return counts

    @property
    def ok(self) -> bool:
        return all(o.outcome in (Outcome.WRITTEN, Outcome.ALREADY_THERE) for o in self.outcomes)


# --- the requests a line means -------------------------------------------------------------------


def _num(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f")


def line_fingerprint(line: PlanLine) -> str:
    """The line's write-relevant values: the same line proposed twice has the same fingerprint."""
    values = {
        "key": line.key,
        "action": line.action,
        "kind": line.kind.value,
        "agreement": line.psa_agreement_id,
        "product": line.psa_product_id,
        "line": line.psa_line_id,
        "replaces": line.replaces_line_id,
        "quantity": _num(line.quantity),
        "unit_price": _num(line.unit_price),
        "unit_cost": _num(line.unit_cost),
        "previous_quantity": _num(line.previous_quantity),
        "effective": line.effective_date.isoformat(),
        "end": line.end_date.isoformat() if line.end_date else None,
        "description": line.description,
        "records": sorted(line.records),
    }
    if line.options_change:  # issue 13: No charge → Billable is another write than Billable → No charge
        values["options"] = f"{line.bill_option}|{line.taxable}"
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:40]


def change_sets(lines: Sequence[PlanLine]) -> list[list[PlanLine]]:
    """The lines grouped by change set (`PlanLine.change_set`), in the order each set first
    appears; within a set, in the given order."""
    sets: dict[str, list[PlanLine]] = {}
    for line in lines:
        sets.setdefault(line.change_set, []).append(line)
    return list(sets.values())


def with_unfinished(lines: Sequence[PlanLine], unfinished: Sequence[dict[str, Any]]) -> list[PlanLine]:
    """The plan's lines with the journal's half-written change sets (`Journal.unfinished_lines`)
    in front. A journaled line the plan does not propose is resumed as journaled; one the plan
    proposes too is taken from the plan (it may carry the operator's fix), except a line
    interrupted part-way (a create-new whose new line exists): a plan made from that half-written
    PSA takes the new line for the one to replace, so the journal's version is kept."""
    planned = {line.key: line for line in lines}
    resumed: list[PlanLine] = []
    for data in unfinished:
        partial = bool(data.get(PARTIAL_MARK))
        line = PlanLine.model_validate({k: v for k, v in data.items() if k != PARTIAL_MARK})
        resumed.append(line if partial or line.key not in planned else planned[line.key])
    again = {line.key for line in resumed}
    return [*resumed, *(line for line in lines if line.key not in again)]


def only_change_sets(lines: Sequence[PlanLine], keys: Sequence[str]) -> list[PlanLine]:
    """`--only KEY…`: the whole change set of every chosen line (RULES.md §3 writes them together)."""
    chosen = {line.change_set for line in lines if line.key in set(keys)}
    return [line for line in lines if line.change_set in chosen]


def line_write(line: PlanLine) -> LineWrite:
    return LineWrite(
        key=line.key,
        agreement_id=line.psa_agreement_id,
        product_id=line.psa_product_id,
        kind="one_time" if line.kind.one_time else "recurring",
        quantity=line.quantity,
        unit_price=line.unit_price,
        unit_cost=line.unit_cost,
        effective_date=line.effective_date,
        end_date=line.end_date,
        description=line.description,
        subscription_id=line.subscription_id,
        sub_product=line.sub_product,
        months=line.months if line.kind is LineKind.EXTRA_MONTHS else None,
        period_start=line.period_start,
        period_end=line.period_end,
        taxable=line.taxable,
        bill_option=line.bill_option,
    )


def line_update(line: PlanLine, effective_from: date) -> LineUpdate:
    """An update or a cancel of `line.psa_line_id`. `effective_from` is when a quantity change
    takes effect (Autotask schedules it; the others ignore it): the first day not yet invoiced."""
    if line.psa_line_id is None:
        raise ValueError(f"{line.key}: an {line.action} needs psa_line_id")
    if line.action == "cancel":
        return LineUpdate(
            key=line.key,
            line_id=line.psa_line_id,
            agreement_id=line.psa_agreement_id,
            cancelled_date=line.end_date,
            previous_quantity=line.previous_quantity,
        )
    prices = line.kind in PRICE_WRITING_KINDS
    # issue 13: a binding's non-default bill options are written on its updates too, and so is an
    # update that changes the line's option (back to Billable included: the PSA line says otherwise)
    stated = line.taxable is not None or line.bill_option != "billable" or line.options_change
    return LineUpdate(
        key=line.key,
        line_id=line.psa_line_id,
        agreement_id=line.psa_agreement_id,
        # a price line writes prices only: the quantity is the recurring update's (RULES §1)
        quantity=None if line.kind is LineKind.PRICE else line.quantity,
        unit_price=line.unit_price if prices else None,
        unit_cost=line.unit_cost if prices else None,
        effective_date=effective_from,
        previous_quantity=line.previous_quantity,
        taxable=line.taxable,
        bill_option=line.bill_option if stated else None,
    )


def replaced_cancel(line: PlanLine) -> LineUpdate:
    """Create-new: the old line ends the day before the new one starts."""
    assert line.replaces_line_id is not None
    return LineUpdate(
        key=line.key,
        line_id=line.replaces_line_id,
        agreement_id=line.psa_agreement_id,
        cancelled_date=line.effective_date - timedelta(days=1),
        previous_quantity=line.previous_quantity,
    )


def planned_request(line: PlanLine, effective_from: date) -> dict[str, Any]:
    """What the journal stores as the intended request (a JSON object)."""
    if line.record_only:
        return {"record_only": True, "quantity": line.quantity}
    if line.action == "create":
        request: dict[str, Any] = {"create": asdict(line_write(line))}
        if line.replaces_line_id:
            request["cancel_replaced"] = asdict(replaced_cancel(line))
        return jsonable_object(request)
    return jsonable_object(
        {line.action: asdict(line_update(line, effective_from)), "expected": _expected(line)}
    )


def _expected(line: PlanLine) -> dict[str, Any]:
    expected: dict[str, Any] = {"quantity": line.previous_quantity}
    if line.kind is LineKind.PRICE:
        expected.update(unit_price=line.previous_unit_price, unit_cost=line.previous_unit_cost)
    elif line.kind not in PRICE_WRITING_KINDS:
        expected.update(unit_price=line.unit_price, unit_cost=line.unit_cost)
    return jsonable_object(expected)


def _values(line: PsaLine | None) -> dict[str, Any] | None:
    if line is None:
        return None
    return jsonable_object(
        {
            "id": line.id,
            "quantity": line.quantity,
            "unit_price": line.unit_price,
            "unit_cost": line.unit_cost,
            "cancelled_date": line.cancelled_date,
        }
    )


async def prepare(psa: PsaConnector) -> None:
    """Connector set-up that building requests needs (Autotask zone, ConnectWise codebase)."""
    for name in ("connect", "discover_codebase"):
        method = getattr(psa, name, None)
        if method is not None:
            await method()


async def dry_run_requests(
    psa: PsaConnector, lines: Sequence[PlanLine], *, effective_from: date
) -> list[tuple[PlanLine, list[httpx.Request]]]:
    """The exact requests a sync of `lines` would send (nothing is sent; a connector may read to
    learn its URL). Record-only lines send nothing. A request whose body needs an id the PSA has
    not given yet (Autotask's units adjustment) shows it unset, as the connector documents."""
    await prepare(psa)
    result: list[tuple[PlanLine, list[httpx.Request]]] = []
    for line in lines:
        if line.record_only:
            result.append((line, []))
        elif line.action == "create":
            requests = list(psa.create_requests(line_write(line)))
            if line.replaces_line_id:
                requests += psa.update_requests(replaced_cancel(line))
            result.append((line, requests))
        else:
            result.append((line, list(psa.update_requests(line_update(line, effective_from)))))
    return result


def first_unbilled(store: Store) -> date:
    """The first day not yet invoiced (RULES.md §3 "E"), from the store's settings."""
    settings = store.settings()
    stored = store.get_setting("as_of")
    as_of = date.fromisoformat(stored) if stored else datetime.now(UTC).astimezone().date()
    through = settings.invoiced_through or last_of_month(as_of)
    return through + timedelta(days=1)


# --- inspecting the PSA --------------------------------------------------------------------------


@dataclass
class Inspection:
    status: Literal["absent", "applied", "partial", "conflict"]
    line: PsaLine | None = None  # create: the line written for the key; update: the line as it is
    old: PsaLine | None = None  # create-new: the replaced line as it is
    extra: list[PsaLine] = field(default_factory=list)
    message: str = ""
    found: dict[str, Any] | None = None


class _JournalFailure(Exception):
    """The PSA write happened but the journal could not record it."""

    def __init__(self, cause: Exception, psa_line_id: str | None):
        super().__init__(str(cause))
        self.psa_line_id = psa_line_id


# --- the executor --------------------------------------------------------------------------------


class SyncExecutor:
    def __init__(
        self,
        store: Store,
        psa: PsaConnector,
        *,
        operator: str | None = None,
        max_sends: int = 3,
        lease_seconds: float = 900.0,
        today: date | None = None,
        effective_from: date | None = None,
    ):
        self.store = store
        self.psa = psa
        self.user = operator or current_operator()
        self.max_sends = max_sends
        self.lease_seconds = lease_seconds
        self.today = today or datetime.now(UTC).astimezone().date()
        self.effective_from = effective_from or first_unbilled(store)
        self.journal = Journal(store)
        self.report: SyncReport | None = None
        self._token = uuid.uuid4().hex
        self._owner = owner_id(self._token)
        self._batch = self._token
        self._halt: str | None = None
        self._companies: dict[str, str] = {}

    # --- the run -----------------------------------------------------------------------------------

    async def run(
        self,
        lines: list[PlanLine],
        *,
        on_event: Callable[[LineOutcome], None] | None = None,
        cancel: asyncio.Event | None = None,
    ) -> SyncReport:
        """Write `lines` change set by change set (RULES.md §3: a change's recurring update, its
        prorates and extra months): every line of a set is claimed before any is sent, and a
        cancel stops after the set in flight. Lines of sets an earlier sync left half-written
        (journal `unfinished_lines`) are resumed first, even when the plan no longer proposes them."""
        report = SyncReport(psa=self.psa.name, batch=self._batch)
        self.report = report
        self._halt = None
        self._load_companies()
        register_live(self._token)
        try:
            report.recovered, report.blocked = await self.recover()
            sets = change_sets(with_unfinished(lines, self.journal.unfinished_lines(self.psa.name)))
            for index, members in enumerate(sets):
                stop = (
                    report.blocked
                    or self._halt
                    or ("cancelled before it ran" if cancel is not None and cancel.is_set() else None)
                )
                if stop:
                    report.cancelled = report.cancelled or (cancel is not None and cancel.is_set())
                    report.halted = self._halt
                    for rest in (line for later in sets[index:] for line in later):
                        self._emit(report, self._outcome(rest, Outcome.SKIPPED, message=stop), on_event)
                    break
                task = asyncio.ensure_future(self._process_set(members, report, on_event))
                try:
                    await asyncio.shield(task)
                except asyncio.CancelledError:
                    # Stop after the set in flight: let it finish and be recorded, then stop.
                    report.cancelled = True
                    try:
                        await task
                    except asyncio.CancelledError:  # cancelled again: its rows stay pending
                        done = {o.key for o in report.outcomes}
                        for line in members:
                            if line.key not in done:
                                self._emit(
                                    report,
                                    self._outcome(
                                        line,
                                        Outcome.FAILED,
                                        journal_state=PENDING,
                                        message="interrupted in flight; the next sync checks the PSA",
                                    ),
                                    on_event,
                                )
                    for rest in (line for later in sets[index + 1 :] for line in later):
                        self._emit(
                            report,
                            self._outcome(rest, Outcome.SKIPPED, message="cancelled before it ran"),
                            on_event,
                        )
                    raise
            return report
        finally:
            unregister_live(self._token)

    async def _process_set(
        self,
        members: list[PlanLine],
        report: SyncReport,
        on_event: Callable[[LineOutcome], None] | None,
    ) -> None:
        """Claim every line of the set, then write the claimed ones in order."""
        acquired: list[tuple[PlanLine, LineOutcome | SyncJournalRow]] = []
        for line in members:
            acquired.append((line, await self._acquire(line)))
        for line, got in acquired:
            if isinstance(got, LineOutcome):
                outcome = got
            elif self._halt:
                outcome = self._release(line, got, self._halt)
            else:
                outcome = await self._write(line, got)
            self._emit(report, outcome, on_event)

    def _release(self, line: PlanLine, row: SyncJournalRow, why: str) -> LineOutcome:
        """A claimed line not sent (the run halted): its row says nothing was written (or stays
        pending for the next start to resolve, when the journal cannot be written either)."""
        try:
            self.journal.mark_failed(row, message=f"not sent: {why}", user=self.user, outcome="not_written")
        except Exception:  # the journal is what failed: the next start resolves the pending row
            log.exception("sync: could not release %s", line.key)
            return self._outcome(line, Outcome.SKIPPED, journal_state=PENDING, message=why)
        return self._outcome(line, Outcome.SKIPPED, journal_state="failed", message=why)

    @staticmethod
    def _emit(
        report: SyncReport, outcome: LineOutcome, on_event: Callable[[LineOutcome], None] | None
    ) -> None:
        report.outcomes.append(outcome)
        if on_event is not None:
            try:
                on_event(outcome)
            except Exception:  # a display problem must not change what was written
                log.exception("sync: on_event failed for %s", outcome.key)

    def _load_companies(self) -> None:
        with self.store.session() as s:
            self._companies = {r.id: r.name for r in s.execute(select(VendorCompanyRow)).scalars()}

    def _outcome(self, line: PlanLine, outcome: Outcome, **values: Any) -> LineOutcome:
        return LineOutcome(
            key=line.key,
            outcome=outcome,
            action=line.action,
            kind=line.kind.value,
            company=self._companies.get(line.company_id, line.company_id),
            description=line.description,
            record_only=line.record_only,
            **values,
        )

    # --- recovery ----------------------------------------------------------------------------------

    async def recover(self) -> tuple[list[LineOutcome], str | None]:
        """Resolve every pending row whose executor is gone. Returns what was resolved and, when
        some row could not be checked, why nothing may be sent now."""
        if not self._companies:
            self._load_companies()
        resolved: list[LineOutcome] = []
        unresolved: list[str] = []
        for row in self.journal.pending(self.psa.name):
            if owner_alive(row, lease_seconds=self.lease_seconds):
                continue  # another sync is writing it right now; its claim protects it
            try:
                outcome = await self._resolve_pending(row)
            except ServiceError as exc:
                unresolved.append(f"{row.key}: {exc}")
                continue
            if outcome is not None:
                resolved.append(outcome)
        blocked = None
        if unresolved:
            blocked = (
                f"{len(unresolved)} write(s) interrupted earlier could not be checked in the PSA "
                f"({unresolved[0]}); nothing was sent — run the sync again when the PSA answers"
            )
        return resolved, blocked

    async def _resolve_pending(self, row: SyncJournalRow) -> LineOutcome | None:
        line = PlanLine.model_validate(row.line)
        if row.record_only:
            ok = self._record_done(
                row,
                line,
                Inspection("applied"),
                Outcome.WRITTEN,
                message="recorded after an interrupted sync (nothing to write)",
            )
            return self._outcome(line, Outcome.WRITTEN, recovered=True, journal_state=DONE) if ok else None
        insp = await self._inspect(line)
        if insp.status == "applied":
            ok = self._record_done(
                row,
                line,
                insp,
                Outcome.WRITTEN,
                message="resolved after an interrupted sync: found in the PSA",
            )
            return (
                self._outcome(
                    line,
                    Outcome.WRITTEN,
                    recovered=True,
                    journal_state=DONE,
                    psa_line_id=insp.line.id if insp.line else None,
                    message="found in the PSA after an interrupted sync",
                )
                if ok
                else None
            )
        if insp.status == "conflict":
            self.journal.mark_conflict(
                row, expected=_expected(line), found=insp.found or {}, message=insp.message, user=self.user
            )
            return self._outcome(
                line,
                Outcome.CONFLICT,
                recovered=True,
                journal_state="conflict",
                message=insp.message,
                expected=_expected(line),
                found=insp.found,
            )
        message = (
            "interrupted before the PSA recorded it; nothing was written"
            if insp.status == "absent"
            else f"interrupted part-way ({insp.message}); the next sync finishes it"
        )
        self.journal.mark_failed(
            row,
            message=message,
            user=self.user,
            outcome="not_written" if insp.status == "absent" else "partial",
            audit_action="sync.recovered",
        )
        return self._outcome(line, Outcome.FAILED, recovered=True, journal_state="failed", message=message)

    # --- one line ----------------------------------------------------------------------------------

    async def _acquire(self, line: PlanLine) -> LineOutcome | SyncJournalRow:
        """Claim the line's journal row (the key's one row) for this executor, or say why not."""
        request = planned_request(line, self.effective_from)
        fingerprint = line_fingerprint(line)
        claim = self.journal.claim(
            key=line.key,
            fingerprint=fingerprint,
            batch=self._batch,
            psa=self.psa.name,
            action=line.action if not line.replaces_line_id else "create_new",
            kind=line.kind.value,
            agreement_id=line.psa_agreement_id,
            company_id=line.company_id,
            company=self._companies.get(line.company_id),
            record_only=line.record_only,
            line=line.model_dump(mode="json"),
            request=request,
            owner=self._owner,
            user=self.user,
            change_set=f"{line.change_set}|{self._batch}",
        )
        row = claim.row
        if claim.claimed:
            return row
        if row.owner == self._owner and row.state == PENDING and row.fingerprint == fingerprint:
            return row  # claimed by this executor already (its change set was claimed together)
        return await self._taken(line, row, request)

    def _refused(self, line: PlanLine, why: str) -> LineOutcome:
        return self._outcome(line, Outcome.REFUSED, message=f"{REFUSED_MESSAGE}: {why}")

    async def _write(self, line: PlanLine, row: SyncJournalRow) -> LineOutcome:
        try:
            if line.record_only:
                self._done(
                    row,
                    line,
                    Inspection("applied"),
                    Outcome.WRITTEN,
                    message="zero-value one-time line: recorded as synced, nothing written",
                )
                return self._outcome(
                    line, Outcome.WRITTEN, journal_state=DONE, message="recorded as synced (nothing to bill)"
                )
            return await self._drive(line, row)
        except _JournalFailure as exc:
            return self._journal_failed(line, exc)

    async def _taken(
        self, line: PlanLine, row: SyncJournalRow, request: dict[str, Any]
    ) -> LineOutcome | SyncJournalRow:
        """The line's journal row exists already. Decide without sending anything whether this
        executor may take it (a new attempt) or must leave it."""
        other_plan = row.fingerprint != line_fingerprint(line)
        if row.state == PENDING:
            if other_plan and owner_alive(row, lease_seconds=self.lease_seconds):
                who = row.owner.split("|")[0]
                return self._refused(line, f"{row.user}@{who} is writing this line with other values")
            if owner_alive(row, lease_seconds=self.lease_seconds):
                who = row.owner.split("|")[0]
                try:
                    insp = None if line.record_only else await self._inspect(line)
                except ServiceError:
                    insp = None
                if insp is not None and insp.status == "applied":
                    return self._outcome(
                        line,
                        Outcome.ALREADY_THERE,
                        journal_state=PENDING,
                        psa_line_id=insp.line.id if insp.line else None,
                        message=f"written by another sync ({row.user}@{who})",
                    )
                return self._outcome(
                    line,
                    Outcome.SKIPPED,
                    journal_state=PENDING,
                    message=f"being written by another sync ({row.user}@{who})",
                )
            try:
                await self._resolve_pending(row)
            except ServiceError as exc:
                return self._outcome(
                    line,
                    Outcome.FAILED,
                    journal_state=PENDING,
                    message=f"an interrupted earlier write could not be checked: {exc}",
                )
            fresh = self.journal.get(row.id)  # type: ignore[arg-type]  # a journaled row has its id (SQLModel types the autoincrement key int | None)
            assert fresh is not None
            row = fresh
            if row.state == PENDING:
                return self._outcome(
                    line, Outcome.SKIPPED, journal_state=PENDING, message="being resolved by another sync"
                )
        if (
            row.state == DONE
            and other_plan
            and line.replaces_line_id
            and line.replaces_line_id == row.psa_line_id
        ):
            # A create-new that would replace the very line an earlier sync wrote for this key.
            return self._refused(
                line, f"line {row.psa_line_id} was written for this key by {row.user}'s sync"
            )
        if row.state == DONE and other_plan and line.action == "create":
            # Written from another plan: if the PSA holds a line for the key, this plan is stale.
            try:
                insp = await self._inspect(line)
            except ServiceError as exc:
                return self._outcome(
                    line,
                    Outcome.FAILED,
                    journal_state=DONE,
                    message=f"written by an earlier sync with other values; the PSA could not be checked: {exc}",
                )
            if insp.status != "absent":
                held = (
                    f" (line {insp.line.id}: {insp.line.quantity} × {insp.line.unit_price})"
                    if insp.line
                    else ""
                )
                return self._refused(line, f"the PSA already holds this key from {row.user}'s sync{held}")
        elif row.state == DONE:
            if line.record_only:
                return self._outcome(
                    line, Outcome.ALREADY_THERE, journal_state=DONE, message="already recorded as synced"
                )
            try:
                insp = await self._inspect(line)
            except ServiceError as exc:
                return self._outcome(
                    line,
                    Outcome.ALREADY_THERE,
                    journal_state=DONE,
                    psa_line_id=row.psa_line_id,
                    message=f"written by an earlier sync (journal); the PSA could not be "
                    f"re-checked now: {exc}",
                )
            if insp.status == "applied":
                return self._outcome(
                    line,
                    Outcome.ALREADY_THERE,
                    journal_state=DONE,
                    psa_line_id=insp.line.id if insp.line else row.psa_line_id,
                    message="written by an earlier sync",
                )
        taken = self.journal.reclaim(
            row,
            batch=self._batch,
            owner=self._owner,
            user=self.user,
            request=request,
            replace=self._row_values(line),
        )
        if taken is None:
            return self._outcome(line, Outcome.SKIPPED, message="another sync took this line meanwhile")
        return taken

    def _row_values(self, line: PlanLine) -> dict[str, Any]:
        """The journal row's columns for `line` (a row taken over for another plan's line)."""
        return {
            "fingerprint": line_fingerprint(line),
            "action": line.action if not line.replaces_line_id else "create_new",
            "kind": line.kind.value,
            "agreement_id": line.psa_agreement_id,
            "company_id": line.company_id,
            "company": self._companies.get(line.company_id),
            "record_only": line.record_only,
            "line": line.model_dump(mode="json"),
            "change_set": f"{line.change_set}|{self._batch}",
        }

    async def _drive(self, line: PlanLine, row: SyncJournalRow) -> LineOutcome:
        try:
            insp = await self._inspect(line)
        except ServiceError as exc:
            return self._failed(
                row, line, f"could not check the PSA before writing ({exc}); nothing was sent"
            )
        sent = False
        last: ServiceError | None = None
        for attempt in range(self.max_sends + 1):
            if insp.status == "applied":
                return self._done(row, line, insp, Outcome.WRITTEN if sent else Outcome.ALREADY_THERE)
            if insp.status == "conflict":
                return self._conflict(row, line, insp)
            if attempt == self.max_sends:
                break
            try:
                sent = True
                insp = await self._apply(line, insp)
            except ServiceError as exc:
                last = exc
                log.info("sync: %s: %s (sent=%s); checking the PSA", line.key, exc, exc.sent)
                try:
                    insp = await self._inspect(line)
                except ServiceError as again:
                    return self._unknown(line, exc, again)
                if exc.rejected and insp.status not in ("applied", "conflict"):
                    detail = f"; {insp.message}" if insp.status == "partial" else ""
                    return self._failed(row, line, _psa_message(exc) + detail)
                continue
            return self._done(row, line, insp, Outcome.WRITTEN)
        assert last is not None
        detail = f" — {insp.message}" if insp.status == "partial" else "; the PSA holds nothing from it"
        return self._failed(row, line, f"{_psa_message(last)} (sent {self.max_sends} times{detail})")

    async def _apply(self, line: PlanLine, insp: Inspection) -> Inspection:
        """Send what `insp` says is missing; returns the PSA's state afterwards."""
        if line.action != "create":
            updated = await self.psa.update_line(line_update(line, self.effective_from))
            return Inspection("applied", line=updated)
        new = insp.line
        if new is None:
            new = await self.psa.create_line(line_write(line))
        elif new.kind == "recurring" and new.quantity == 0 and line.quantity > 0:
            # Autotask: the contract service exists but its units adjustment never landed.
            new = await self.psa.update_line(
                LineUpdate(
                    key=line.key,
                    line_id=new.id,
                    agreement_id=line.psa_agreement_id,
                    quantity=line.quantity,
                    previous_quantity=Decimal(0),
                    effective_date=line.effective_date,
                )
            )
        extra: list[PsaLine] = []
        if line.replaces_line_id and not _ended(insp.old, line.effective_date - timedelta(days=1)):
            extra.append(await self.psa.update_line(replaced_cancel(line)))
        return Inspection("applied", line=new, extra=extra)

    # --- inspection --------------------------------------------------------------------------------

    async def _read_line(self, agreement_id: str, line_id: str) -> PsaLine | None:
        for item in await self.psa.lines([agreement_id]):
            if item.id == line_id:
                return item
        return None

    @staticmethod
    def _is_ours(found: PsaLine, line: PlanLine) -> bool:
        if found.id in (line.replaces_line_id, line.psa_line_id):
            return False
        # A recurring line that ended before this one starts is an older line with the same key.
        return not (
            not line.kind.one_time
            and found.cancelled_date is not None
            and found.cancelled_date < line.effective_date
        )

    async def _find_created(self, line: PlanLine) -> PsaLine | None:
        # The line as written goes along: where a PSA's key field is unproven the connector matches
        # it a second, independent way (HaloPSA, Autotask), in this process or after a crash alike.
        found = await self.psa.find_line(line.psa_agreement_id, line.key, expect=line_write(line))
        if found is None:
            return None
        if self._is_ours(found, line):
            return found
        # find_line picked another line with the same key (the replaced one): look at them all.
        candidates = [
            item
            for item in await self.psa.lines([line.psa_agreement_id])
            if item.source is not None and item.source.key == line.key and self._is_ours(item, line)
        ]
        return max(candidates, key=lambda item: int(item.id) if item.id.isdigit() else 0, default=None)

    async def _inspect(self, line: PlanLine) -> Inspection:
        if line.action == "create":
            new = await self._find_created(line)
            partial_units = (
                new is not None and new.kind == "recurring" and new.quantity == 0 and line.quantity > 0
            )
            if new is not None and line.kind.one_time and not _holds(new, line):
                # Found by key but not what this plan writes (an edit by hand, or a line written
                # before extra months carried their months): never "already there", never re-sent.
                return Inspection(
                    "conflict",
                    line=new,
                    found=_values(new),
                    message=f"line {new.id} carries this key but holds {new.quantity} × "
                    f"{new.unit_price} (cost {new.unit_cost}); the plan writes {planned_quantity(line)} × "
                    f"{line.unit_price} (cost {line.unit_cost}); nothing was written",
                )
            if not line.replaces_line_id:
                if new is None:
                    return Inspection("absent")
                if partial_units:
                    return Inspection("partial", line=new, message=f"line {new.id} exists without its units")
                return Inspection("applied", line=new)
            old = await self._read_line(line.psa_agreement_id, line.replaces_line_id)
            ended = _ended(old, line.effective_date - timedelta(days=1))
            if new is not None and ended and not partial_units:
                return Inspection("applied", line=new, old=old, extra=[old] if old else [])
            if new is None and not ended:
                if old is None:
                    return Inspection(
                        "conflict",
                        message=f"line {line.replaces_line_id} to replace is no longer in the PSA",
                        found={"id": line.replaces_line_id, "missing": True},
                    )
                if line.previous_quantity is not None and old.quantity != line.previous_quantity:
                    return self._conflict_inspection(line, old)
                return Inspection("absent", old=old)
            done = f"new line {new.id} created" if new is not None else "new line not created"
            rest = (
                f"line {line.replaces_line_id} ended"
                if ended
                else f"line {line.replaces_line_id} not ended yet"
            )
            return Inspection("partial", line=new, old=old, message=f"{done}, {rest}")
        assert line.psa_line_id is not None
        current = await self._read_line(line.psa_agreement_id, line.psa_line_id)
        if current is None:
            return Inspection(
                "conflict",
                message=f"line {line.psa_line_id} is no longer in the PSA",
                found={"id": line.psa_line_id, "missing": True},
            )
        if line.action == "cancel":
            assert line.end_date is not None
            if _ended(current, line.end_date):
                return Inspection("applied", line=current)
        elif (
            current.quantity == line.quantity
            and (
                line.kind not in PRICE_WRITING_KINDS
                or (current.unit_price, current.unit_cost) == (line.unit_price, line.unit_cost)
            )
            and _options_hold(current, line)
        ):
            return Inspection("applied", line=current)
        if line.previous_quantity is not None and current.quantity != line.previous_quantity:
            return self._conflict_inspection(line, current)
        if line.kind not in PRICE_WRITING_KINDS and (current.unit_price, current.unit_cost) != (
            line.unit_price,
            line.unit_cost,
        ):
            return self._conflict_inspection(line, current)
        if line.kind is LineKind.PRICE and (
            current.unit_price not in (line.previous_unit_price, line.unit_price)
            or current.unit_cost not in (line.previous_unit_cost, line.unit_cost)
        ):
            # a price set by hand since the plan (neither the old one nor the proposed one); a
            # half-landed write (Autotask: the cost adjustment without the price) is finished instead
            return self._conflict_inspection(line, current)
        return Inspection("absent", line=current)

    @staticmethod
    def _conflict_inspection(line: PlanLine, current: PsaLine) -> Inspection:
        expected = _expected(line)
        found = _values(current) or {}
        diffs = [
            f"{name} {expected[name]} → {found[name]}"
            for name in ("quantity", "unit_price", "unit_cost")
            if name in expected and expected[name] is not None and found.get(name) != expected[name]
        ]
        return Inspection(
            "conflict",
            line=current,
            found=found,
            message=f"line {current.id} was changed in the PSA since the plan was made "
            f"(plan expected → PSA has: {'; '.join(diffs)}); nothing was written",
        )

    # --- recording ---------------------------------------------------------------------------------

    def _record_done(
        self,
        row: SyncJournalRow,
        line: PlanLine,
        insp: Inspection,
        outcome: Outcome,
        message: str | None = None,
    ) -> bool:
        psa_line = insp.line
        before: dict[str, Any] | None = None
        if line.action != "create":
            before = {"quantity": line.previous_quantity, "psa_line_id": line.psa_line_id}
        elif line.replaces_line_id:
            before = {"replaces_line_id": line.replaces_line_id, "quantity": line.previous_quantity}
        after: dict[str, Any] = {
            "action": line.action,
            "kind": line.kind.value,
            "quantity": line.quantity,
            "unit_price": line.unit_price,
            "unit_cost": line.unit_cost,
            "effective_date": line.effective_date,
            "end_date": line.end_date,
            "psa": self.psa.name,
            "psa_line_id": psa_line.id if psa_line else None,
            "outcome": outcome.value,
            "description": line.description,
        }
        if line.record_only:
            after["record_only"] = True
        if line.records:
            after["records"] = list(line.records)
        return self.journal.mark_done(
            row,
            outcome=outcome.value,
            psa_line=psa_line,
            extra_lines=insp.extra,
            quantity=line.quantity,
            synced_on=self.today,
            user=self.user,
            audit_action=f"sync.{outcome.value}",
            before=before,
            after=after,
            message=message,
            consume_override=bool(line.replaces_line_id),
            also_synced=line.records,
        )

    def _done(
        self,
        row: SyncJournalRow,
        line: PlanLine,
        insp: Inspection,
        outcome: Outcome,
        message: str | None = None,
    ) -> LineOutcome:
        try:
            self._record_done(row, line, insp, outcome, message=message)
        except Exception as exc:  # the database failed after the PSA write
            raise _JournalFailure(exc, insp.line.id if insp.line else None) from exc
        return self._outcome(
            line,
            outcome,
            journal_state=DONE,
            psa_line_id=insp.line.id if insp.line else None,
            message="found in the PSA (not sent again)" if outcome is Outcome.ALREADY_THERE else "",
        )

    def _journal_failed(self, line: PlanLine, exc: _JournalFailure) -> LineOutcome:
        self._halt = f"the journal could not record a write ({exc}); stopped so nothing else is written"
        where = f" (line {exc.psa_line_id})" if exc.psa_line_id else ""
        return self._outcome(
            line,
            Outcome.FAILED,
            journal_state=PENDING,
            psa_line_id=exc.psa_line_id,
            message=f"written to the PSA{where} but the journal could not record it ({exc}); it stays "
            "pending and the next sync confirms it by lookup",
        )

    def _failed(self, row: SyncJournalRow, line: PlanLine, message: str) -> LineOutcome:
        self.journal.mark_failed(row, message=message, user=self.user)
        return self._outcome(line, Outcome.FAILED, journal_state="failed", message=message)

    def _conflict(self, row: SyncJournalRow, line: PlanLine, insp: Inspection) -> LineOutcome:
        expected = _expected(line)
        self.journal.mark_conflict(
            row, expected=expected, found=insp.found or {}, message=insp.message, user=self.user
        )
        return self._outcome(
            line,
            Outcome.CONFLICT,
            journal_state="conflict",
            message=insp.message,
            expected=expected,
            found=insp.found,
            psa_line_id=insp.line.id if insp.line else line.psa_line_id,
        )

    def _unknown(self, line: PlanLine, exc: ServiceError, again: ServiceError) -> LineOutcome:
        return self._outcome(
            line,
            Outcome.FAILED,
            journal_state=PENDING,
            message=f"{_psa_message(exc)}; the PSA could not be checked afterwards ({again}). Nothing "
            "more was sent: the journal keeps it pending; the next sync looks it up before sending anything",
        )


def _holds(found: PsaLine, line: PlanLine) -> bool:
    """A one-time PSA line holds the plan line's values (extra months: gap × months, full price)."""
    return (found.quantity, found.unit_price, found.unit_cost) == (
        planned_quantity(line),
        line.unit_price,
        line.unit_cost,
    )


def _options_hold(found: PsaLine, line: PlanLine) -> bool:
    """An option update (issue 13) is applied only when the PSA line bills as it says."""
    return (line.previous_bill_option is None or found.bill_option == line.bill_option) and (
        line.previous_taxable is None or found.taxable == line.taxable
    )


def _ended(line: PsaLine | None, by: date) -> bool:
    return line is not None and line.cancelled_date is not None and line.cancelled_date <= by


def _psa_message(exc: ServiceError) -> str:
    return str(exc)
