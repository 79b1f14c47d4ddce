"""Money the way the customer's invoice changes (issue 13): per line, per customer and in total.

A plan line's `total_price` is the *gross* value of the line as written (an update 7 → 6 of a
$40.00 seat is a $240.00 line). What the operator needs is what changes on the invoice:

* **net $/month**: the change in monthly recurring billing, new − old. A recurring line (seats,
  arrears counts, metered usage, usage summaries) replaces what the PSA bills each month: its new
  total less what the PSA line it updates (or cancels, or replaces with *create new*) billed. A
  decrease 7 → 6 at $40.00 is −$40.00/month; a cancellation 12 → 0 at $4.00 is −$48.00/month.
* **one-time**: prorates and extra-months lines, billed once.
* **credits due**: what `credit_due` findings say is owed back (trueup never writes credits,
  RULES.md §4 and §3); read from the finding's message, the only place the rules state it.
* **cost and margin**: the same split for cost; margin = price change − cost change, its % of
  the price change (none when the price does not change).

* **bill options** (issue 13): a line written *do not bill* or *no charge* bills the customer
  $0.00 — its price change is $0 (the line's own total stays its gross value) while its cost is
  the MSP's all the same; a PSA line read as not billed billed $0 before.

Gross figures (the line's own totals) stay in the detail. Headless: no UI imports."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from engine.money import CENT, fmt_money, round_cents
from engine.plan import Finding, LineKind, PlanLine

ZERO = Decimal("0.00")
HUNDRED = Decimal(100)
_CREDIT = re.compile(r"(-?\$[\d,]+\.\d{2}) to credit\.")


class OldLine(Protocol):
    """What the PSA bills today for the line a plan line updates (engine.scenario.PsaLine)."""

    @property
    def quantity(self) -> Decimal: ...

    @property
    def unit_price(self) -> Decimal: ...

    @property
    def unit_cost(self) -> Decimal: ...


@dataclass(frozen=True)
class Net:
    """The invoice change of one line or a sum of lines. `lines`: how many plan lines it sums."""

    monthly: Decimal = ZERO  # change in monthly recurring billing (new − old)
    monthly_cost: Decimal = ZERO
    one_time: Decimal = ZERO
    one_time_cost: Decimal = ZERO
    credits: Decimal = ZERO  # credits due (credit_due findings), a positive amount owed back
    gross: Decimal = ZERO  # the lines' own totals, as written (the detail's figure)
    lines: int = 0

    def __add__(self, other: Net) -> Net:
        return Net(
            self.monthly + other.monthly,
            self.monthly_cost + other.monthly_cost,
            self.one_time + other.one_time,
            self.one_time_cost + other.one_time_cost,
            self.credits + other.credits,
            self.gross + other.gross,
            self.lines + other.lines,
        )

    @property
    def margin(self) -> Decimal:
        """What the change earns: price change less cost change (monthly and one-time together)."""
        return (self.monthly + self.one_time) - (self.monthly_cost + self.one_time_cost)

    @property
    def margin_pct(self) -> Decimal | None:
        """The margin as a % of the price change, to one decimal; None when the price does not change."""
        price = self.monthly + self.one_time
        if price == 0:
            return None
        return (self.margin * HUNDRED / price).quantize(Decimal("0.1"))


def old_billing(line: PlanLine, old: OldLine | None) -> tuple[Decimal, Decimal]:
    """What the PSA bills (price, cost) each month for what `line` changes, before the change."""
    if old is not None and (line.psa_line_id is not None or line.replaces_line_id is not None):
        billed = getattr(old, "bill_option", None) in (None, "billable")  # PsaLine: when read
        price = round_cents(old.quantity * old.unit_price) if billed else ZERO
        return price, round_cents(old.quantity * old.unit_cost)
    if line.previous_quantity is None:
        return ZERO, ZERO  # a new line: nothing billed before
    # An update keeps the PSA line's own unit price and cost (engine.rules: quantity only); a price
    # update (engine.rules.leaks) says what it held: its net is (new − old) × quantity. A line of a
    # binding that does not bill was written that way before (its bill option) and billed $0; an
    # option update (issue 13) says what the PSA line billed as before: Billable → No charge at
    # 10 × $20.00 is −$200.00/month.
    price = line.unit_price if line.previous_unit_price is None else line.previous_unit_price
    cost = line.unit_cost if line.previous_unit_cost is None else line.previous_unit_cost
    billed_before = (line.previous_bill_option or line.bill_option) == "billable"
    before = round_cents(line.previous_quantity * price) if billed_before else ZERO
    return before, round_cents(line.previous_quantity * cost)


def line_net(line: PlanLine, old: OldLine | None = None) -> Net:
    """The invoice change of one plan line. `old`: the PSA line it updates, cancels or replaces
    (by `psa_line_id` / `replaces_line_id`), when known; else the line's previous quantity at its
    own unit price (what an update keeps)."""
    billed = line.total_price if line.billed else ZERO  # do not bill / no charge: $0 to the customer
    if line.kind.one_time:
        return Net(one_time=billed, one_time_cost=line.total_cost, gross=line.total_price, lines=1)
    if line.kind is LineKind.PRICE and line.previous_unit_price is not None:
        # (new − old unit price) × quantity: the quantity change is the recurring update's
        old_cost = line.unit_cost if line.previous_unit_cost is None else line.previous_unit_cost
        monthly = line.total_price - round_cents(line.quantity * line.previous_unit_price)
        return Net(
            monthly=monthly if line.billed else ZERO,
            monthly_cost=line.total_cost - round_cents(line.quantity * old_cost),
            gross=line.total_price,
            lines=1,
        )
    before_price, before_cost = old_billing(line, old)
    if line.kind is LineKind.CANCEL:
        after_price = after_cost = ZERO
    else:
        after_price, after_cost = billed, line.total_cost
    return Net(
        monthly=after_price - before_price,
        monthly_cost=after_cost - before_cost,
        gross=line.total_price,
        lines=1,
    )


def old_line_of(line: PlanLine, psa_lines: Mapping[str, OldLine]) -> OldLine | None:
    ref = line.psa_line_id or line.replaces_line_id
    return psa_lines.get(ref) if ref is not None else None


def credit_of(finding: Finding) -> Decimal:
    """The amount a `credit_due` finding says is owed back ($0.00 for any other finding)."""
    if finding.code != "credit_due":
        return ZERO
    found = _CREDIT.search(finding.message)
    if found is None:
        return ZERO
    return Decimal(found.group(1).replace("$", "").replace(",", "")).quantize(CENT)


def total_net(
    lines: Iterable[PlanLine],
    psa_lines: Mapping[str, OldLine] | None = None,
    findings: Iterable[Finding] = (),
) -> Net:
    """The sum of `line_net` over `lines`, plus the credits `findings` say are due."""
    psa_lines = psa_lines or {}
    total = Net()
    for line in lines:
        total += line_net(line, old_line_of(line, psa_lines))
    owed = sum((credit_of(f) for f in findings), ZERO)
    return total + Net(credits=owed) if owed else total


def by_company(lines: Iterable[PlanLine], psa_lines: Mapping[str, OldLine] | None = None) -> dict[str, Net]:
    """Per vendor company (customer): the sum of its lines' `line_net`."""
    psa_lines = psa_lines or {}
    out: dict[str, Net] = {}
    for line in lines:
        out[line.company_id] = out.get(line.company_id, Net()) + line_net(line, old_line_of(line, psa_lines))
    return out


class NetSum:
    """A running sum of Nets: one Net built at the end (`net`), not one per Net added."""

    __slots__ = ("credits", "gross", "lines", "monthly", "monthly_cost", "one_time", "one_time_cost")

    def __init__(self) -> None:
        self.monthly = self.monthly_cost = self.one_time = self.one_time_cost = ZERO
        self.credits = self.gross = ZERO
        self.lines = 0

    def add(self, net: Net) -> None:
        self.monthly += net.monthly
        self.monthly_cost += net.monthly_cost
        self.one_time += net.one_time
        self.one_time_cost += net.one_time_cost
        self.credits += net.credits
        self.gross += net.gross
        self.lines += net.lines

    def remove(self, net: Net) -> None:
        """Take back a Net added before (Decimal sums are exact: what is left is the sum of the rest)."""
        self.monthly -= net.monthly
        self.monthly_cost -= net.monthly_cost
        self.one_time -= net.one_time
        self.one_time_cost -= net.one_time_cost
        self.credits -= net.credits
        self.gross -= net.gross
        self.lines -= net.lines

    def net(self) -> Net:
        return Net(
            self.monthly,
            self.monthly_cost,
            self.one_time,
            self.one_time_cost,
            self.credits,
            self.gross,
            self.lines,
        )


def nets_by_kind(lines: Iterable[PlanLine], psa_lines: Mapping[str, OldLine]) -> dict[LineKind, Net]:
    """Per line kind: the sum of `line_net` over `lines` (kinds with no line are left out)."""
    out: dict[LineKind, NetSum] = {}
    for line in lines:
        into = out.get(line.kind)
        if into is None:
            into = out[line.kind] = NetSum()
        into.add(line_net(line, old_line_of(line, psa_lines)))
    return {kind: into.net() for kind, into in out.items()}


def fmt_net(value: Decimal) -> str:
    """A change: `+$852.81`, `-$40.00`, `$0.00`."""
    if value > 0:
        return "+" + fmt_money(value)
    return fmt_money(value)


def fmt_pct(value: Decimal | None) -> str:
    return "—" if value is None else f"{value}%"


def summary(net: Net, psa: str) -> str:
    """The confirm's sentence: `net +$852.81/month, one-time $1,440.78, to ConnectWise`."""
    text = f"net {fmt_net(net.monthly)}/month, one-time {fmt_money(net.one_time)}"
    if net.credits:
        text += f", credits due {fmt_money(net.credits)} (not written)"
    return text + f", to {psa}"
