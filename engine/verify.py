"""Plan vs what the PSA holds: for every plan line, the amount the PSA will invoice for it (as that
PSA computes it) against the plan's `total_price` / `total_cost`, by line key.

The amount a PSA invoices for a line is quantity × unit price (ConnectWise subtracts the addition's
`lessIncluded` first, when the connector reads it), rounded half-up to cents — per month for a
recurring line, once for a one-time line. The plan's totals are the same figures (RULES.md §1–§3:
a recurring line's total is one month, a one-time line's total is what it bills once), so they
must be equal to the cent. An extra-months line is written with quantity = gap × months (each
connector's docstring says why), so its PSA amount is gap × price × months, once.

Per line key:
- **create**: the PSA lines carrying the key on the plan line's agreement (the replaced line of a
  create-new, and a recurring line that ended before this one starts, are older lines with the
  same key); none → `missing`, more than one → `duplicate`; a create-new's replaced line must end
  the day before the new one starts.
- **update**: the line `psa_line_id`, re-read; gone → `missing`.
- **cancel**: the line must carry a cancelled date on or before the plan's end date (its amount
  is not compared: the line stops billing).
Per line too (issue 13): how the PSA bills it, when its connector reads that (ConnectWise
`billCustomer` / `taxableFlag`): a line landed Billable when the plan says No charge (or the other
way) is a difference, and so is a taxable flag other than the plan's when the plan sets one (a plan
line's `taxable` None leaves it to the PSA product's default).
Any other status than `ok` is a difference; `difference` is what the PSA will invoice minus what
the plan says, in dollars. Pure code (`verify_lines`) plus one async read through a
`PsaConnector` (`verify_psa`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Literal

from engine.connectors.base import PsaConnector
from engine.money import round_cents
from engine.plan import LineKind, PlanLine
from engine.scenario import BILL_OPTION_LABELS, PsaLine

ZERO = Decimal("0.00")

Status = Literal["ok", "differs", "missing", "duplicate"]


def psa_amount(line: PsaLine) -> tuple[Decimal, Decimal]:
    """(price, cost) the PSA invoices for `line`: per month for a recurring line, once for a
    one-time line. `less_included` (ConnectWise `lessIncluded`) is subtracted when the connector
    exposes it on the line."""
    included = getattr(line, "less_included", None) or Decimal(0)
    quantity = line.quantity - included
    return round_cents(quantity * line.unit_price), round_cents(quantity * line.unit_cost)


def planned_quantity(line: PlanLine) -> Decimal:
    """The quantity the PSA holds for a plan line once written: an extra-months line carries its
    months in the quantity (gap × months), every other line its own quantity."""
    if line.kind is LineKind.EXTRA_MONTHS and line.months:
        return line.quantity * line.months
    return line.quantity


def invoiced_amount(line: PlanLine) -> Decimal:
    """What the PSA will invoice for a plan line once written, computed as the PSA does (quantity as
    written × unit price, rounded to cents): per month for a recurring line, once for a one-time
    line; a cancellation adds nothing."""
    if line.action == "cancel":
        return ZERO
    return round_cents(planned_quantity(line) * line.unit_price)


def invoiced_total(lines: Iterable[PlanLine]) -> Decimal:
    return sum((invoiced_amount(line) for line in lines), ZERO)


@dataclass(frozen=True)
class LineCheck:
    key: str
    kind: str
    action: str
    status: Status
    planned_price: Decimal
    planned_cost: Decimal
    psa_price: Decimal | None = None
    psa_cost: Decimal | None = None
    psa_line_ids: tuple[str, ...] = ()
    message: str = ""

    @property
    def difference(self) -> Decimal:
        """What the PSA will invoice minus what the plan says (a missing line: −planned)."""
        if self.action == "cancel":
            return ZERO
        return (self.psa_price or ZERO) - self.planned_price


@dataclass
class Verification:
    psa: str
    checks: list[LineCheck] = field(default_factory=list)
    duplicates: dict[str, tuple[str, ...]] = field(default_factory=dict)  # key → PSA line ids

    @property
    def problems(self) -> list[LineCheck]:
        return [c for c in self.checks if c.status != "ok"]

    @property
    def ok(self) -> bool:
        return not self.problems and not self.duplicates

    def _sum(self, name: str) -> Decimal:
        return sum((getattr(c, name) or ZERO for c in self.checks if c.action != "cancel"), ZERO)

    @property
    def planned_price(self) -> Decimal:
        return self._sum("planned_price")

    @property
    def landed_price(self) -> Decimal:
        return self._sum("psa_price")

    @property
    def planned_cost(self) -> Decimal:
        return self._sum("planned_cost")

    @property
    def landed_cost(self) -> Decimal:
        return self._sum("psa_cost")

    @property
    def difference(self) -> Decimal:
        return self.landed_price - self.planned_price

    def summary(self) -> str:
        """One sentence for the operator."""
        head = (
            f"{len(self.checks)} line(s) checked in {self.psa}: planned ${self.planned_price:,} "
            f"(cost ${self.planned_cost:,}), the PSA will invoice ${self.landed_price:,} "
            f"(cost ${self.landed_cost:,})"
        )
        if self.ok:
            return head + " — the PSA holds the plan."
        parts = []
        counts: dict[str, int] = defaultdict(int)
        for check in self.problems:
            counts[check.status] += 1
        parts += [f"{n} {status}" for status, n in sorted(counts.items())]
        if self.duplicates:
            parts.append(f"{len(self.duplicates)} key(s) held twice")
        return head + f" — differs by ${self.difference:,}: " + ", ".join(parts) + "."


def _overlaps(a: PsaLine, b: PsaLine) -> bool:
    """Two lines with one key bill the same thing twice when both are one-time, or when their
    recurring periods overlap (a create-new's replaced line ends the day before the new one)."""
    if a.kind == "one_time" or b.kind == "one_time":
        return a.kind == b.kind
    end_a = a.cancelled_date or date.max
    end_b = b.cancelled_date or date.max
    return a.effective_date <= end_b and b.effective_date <= end_a


def duplicate_keys(psa_lines: Iterable[PsaLine]) -> dict[str, tuple[str, ...]]:
    """Keys that more than one PSA line carries for the same billing (see `_overlaps`)."""
    by_key: dict[str, list[PsaLine]] = defaultdict(list)
    for line in psa_lines:
        if line.source is not None and line.source.key:
            by_key[line.source.key].append(line)
    found: dict[str, tuple[str, ...]] = {}
    for key, lines in by_key.items():
        if len(lines) < 2:
            continue
        clash: set[str] = set()
        for i, first in enumerate(lines):
            for second in lines[i + 1 :]:
                if _overlaps(first, second):
                    clash |= {first.id, second.id}
        if clash:
            found[key] = tuple(sorted(clash))
    return found


def _created(line: PlanLine, candidates: Sequence[PsaLine]) -> list[PsaLine]:
    out = []
    for item in candidates:
        if item.id in (line.replaces_line_id, line.psa_line_id):
            continue
        if (
            not line.kind.one_time
            and item.cancelled_date is not None
            and item.cancelled_date < line.effective_date
        ):
            continue  # an older line with the same key
        out.append(item)
    return out


def check_line(line: PlanLine, psa_lines: Sequence[PsaLine]) -> LineCheck:
    """One plan line against the PSA lines of its agreement."""
    base: dict[str, Any] = dict(
        key=line.key,
        kind=line.kind.value,
        action=line.action,
        planned_price=line.total_price,
        planned_cost=line.total_cost,
    )
    if line.action == "create":
        keyed = [
            item
            for item in psa_lines
            if item.agreement_id == line.psa_agreement_id
            and item.source is not None
            and item.source.key == line.key
        ]
        found = _created(line, keyed)
        if not found:
            return LineCheck(**base, status="missing", message="no line carries this key in the PSA")
        prices = [psa_amount(item) for item in found]
        price = sum((p for p, _ in prices), ZERO)
        cost = sum((c for _, c in prices), ZERO)
        ids = tuple(item.id for item in found)
        if len(found) > 1:
            return LineCheck(
                **base,
                status="duplicate",
                psa_price=price,
                psa_cost=cost,
                psa_line_ids=ids,
                message=f"{len(found)} lines carry this key: {', '.join(ids)}",
            )
        notes: list[str] = []
        if line.replaces_line_id:
            old = next((item for item in psa_lines if item.id == line.replaces_line_id), None)
            if old is not None and (
                old.cancelled_date is None or old.cancelled_date > line.effective_date - timedelta(days=1)
            ):
                notes.append(f"replaced line {old.id} does not end {line.effective_date - timedelta(days=1)}")
        return _compare(base, price, cost, ids, notes + _bill_notes(line, found[0]))
    current = next((item for item in psa_lines if item.id == line.psa_line_id), None)
    if current is None:
        return LineCheck(**base, status="missing", message=f"line {line.psa_line_id} is not in the PSA")
    price, cost = psa_amount(current)
    if line.action == "cancel":
        ended = (
            current.cancelled_date is not None
            and line.end_date is not None
            and (current.cancelled_date <= line.end_date)
        )
        return LineCheck(
            **base,
            status="ok" if ended else "differs",
            psa_price=price,
            psa_cost=cost,
            psa_line_ids=(current.id,),
            message=""
            if ended
            else f"cancelled date {current.cancelled_date or 'not set'}, plan {line.end_date}",
        )
    return _compare(base, price, cost, (current.id,), _bill_notes(line, current))


def _bill_notes(line: PlanLine, landed: PsaLine) -> list[str]:
    """How the PSA bills the landed line against the plan's bill option and taxable flag (only what
    the connector read: None is not known)."""
    notes: list[str] = []
    if landed.bill_option is not None and landed.bill_option != line.bill_option:
        notes.append(
            f"bill option {BILL_OPTION_LABELS[line.bill_option]} planned, "
            f"{BILL_OPTION_LABELS[landed.bill_option]} in the PSA"
        )
    if line.taxable is not None and landed.taxable is not None and landed.taxable != line.taxable:
        notes.append(
            f"{'taxable' if line.taxable else 'not taxable'} planned, "
            f"{'taxable' if landed.taxable else 'not taxable'} in the PSA"
        )
    return notes


def _compare(
    base: dict[str, Any],
    price: Decimal,
    cost: Decimal,
    ids: tuple[str, ...],
    notes: list[str],
) -> LineCheck:
    if price != base["planned_price"]:
        notes.append(f"price {base['planned_price']} planned, {price} in the PSA")
    if cost != base["planned_cost"]:
        notes.append(f"cost {base['planned_cost']} planned, {cost} in the PSA")
    return LineCheck(
        **base,
        status="differs" if notes else "ok",
        psa_price=price,
        psa_cost=cost,
        psa_line_ids=ids,
        message="; ".join(notes),
    )


def _priced(lines: list[PlanLine]) -> list[PlanLine]:
    """A recurring update followed by a price line of the same PSA line (engine.rules.leaks): once
    both are written the line invoices the update's quantity at the new prices, so the update is
    checked at those prices."""
    prices = {line.psa_line_id: line for line in lines if line.kind is LineKind.PRICE and line.psa_line_id}
    if not prices:
        return lines
    out = []
    for line in lines:
        price = prices.get(line.psa_line_id or "") if line.kind is LineKind.RECURRING else None
        if price is not None and line.action == "update":
            line = line.model_copy(
                update={
                    "unit_price": price.unit_price,
                    "unit_cost": price.unit_cost,
                    "total_price": round_cents(line.quantity * price.unit_price),
                    "total_cost": round_cents(line.quantity * price.unit_cost),
                }
            )
        out.append(line)
    return out


def verify_lines(lines: Iterable[PlanLine], psa_lines: Sequence[PsaLine], *, psa: str) -> Verification:
    """Every plan line (zero-value ones are not plan lines) against the PSA's lines."""
    by_agreement: dict[str, list[PsaLine]] = defaultdict(list)
    for item in psa_lines:
        by_agreement[item.agreement_id].append(item)
    lines = _priced(list(lines))
    checks = [check_line(line, by_agreement.get(line.psa_agreement_id, [])) for line in lines]
    agreements = {line.psa_agreement_id for line in lines}
    duplicates = duplicate_keys(item for item in psa_lines if item.agreement_id in agreements)
    return Verification(psa=psa, checks=checks, duplicates=duplicates)


async def verify_psa(psa: PsaConnector, lines: Sequence[PlanLine]) -> Verification:
    """Re-read the PSA lines of the plan's agreements through `psa` and verify `lines`."""
    agreements = sorted({line.psa_agreement_id for line in lines})
    psa_lines = await psa.lines(agreements) if agreements else []
    return verify_lines(lines, psa_lines, psa=psa.name)
