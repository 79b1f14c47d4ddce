"""Commitment terms and cancellation windows (issue 15), tied to the billing line.

Microsoft's new-commerce subscriptions, sold through Pax8, bind the MSP for a term. The data:
a subscription's `commitmentTerm {term, endDate}` [spec Pax8 Subscription/SubscriptionCommitment],
its `billingTerm` (Monthly = paid monthly, Annual = paid up front) [spec Pax8 Subscription], and its
product's commitment rules, `GET /products/{id}/dependencies` → `commitmentDependencies[]`:
`autoRenew`, `renewalWindowDaysBeforeTermEnd`, `renewalWindowDaysAfterTermEnd`,
`allowForQuantityDecrease`, `allowForEarlyCancellation`, `cancellationFeeApplied` [spec Pax8
Commitment]. They reach the engine as `engine.scenario.Commitment` (one per subscription).

Which terms are *committed*: annual, two-year and three-year. A monthly term renews every month and
a trial bills nothing, so neither raises any of the findings below (a rule of ours, per the issue).

The rules:

* **Reducible until.** Seats added to a new-commerce subscription can be removed, with a prorated
  refund, within 168 hours (7 days) of being added; after that they are billed for the whole term
  [doc learn.microsoft.com/partner-center/developer/cancel-an-azure-marketplace-subscription:
  "New commerce subscriptions can be canceled within 7 days … of purchase or renewal";
  doc learn.microsoft.com/dotnet/api/microsoft.store.partnercenter.models.subscriptions.
  refundablequantitydetail: "the number of seats that can be reduced within the return window",
  `AllowedUntilDateTime`; doc support.appxite.com "NCE Cancellation policy": "After 7 calendar days
  … the partner will be billed for the full term … (applicable to any billing plan)"]. So each
  seat addition at instant `t` (UTC) is reducible until `t + 168 h`, judged at the instant `now`:
  `seats_reducible_until` names that instant.
* **Renewal window.** The dates inside which a committed subscription can be reduced or cancelled
  at renewal: from `end_date − renewalWindowDaysBeforeTermEnd` through
  `end_date + renewalWindowDaysAfterTermEnd` (both days inclusive) [spec Pax8 Commitment: "Number
  of days before term end-date when renewal window opens" / "after the term end-date that renewal
  window closes"]. When the product's rules are unknown the window is the 7 days after the term
  ends (NCE's renewal cancellation window, [doc support.appxite.com "NCE Cancellation policy":
  "Upon renewal … another 7 calendar days cancellation window"]) — ASSUMED for Pax8 when its
  dependencies do not say. Findings, judged on `today` (ours):
  - `renewal_window_open`: today is inside the window; the message gives the days left (the day
    it closes counts);
  - `renewal_in_n_days`: the window has not opened yet and the term renews (ends) within
    `within_days` days (setting `renewal_notice_days`, default 14) — the warning before an
    auto-renewal; the message gives the window and the days until it closes.
  The two never fire together: one is "act now", the other "act soon".
* **Cost continues.** A plan line that reduces billing (a recurring update to fewer seats, or a
  cancellation) on a committed subscription, on a day outside its renewal window, raises
  `commitment_cost_continues` unless the product allows it (`allowForQuantityDecrease` for a
  decrease, `allowForEarlyCancellation` for a cancellation). Seats still inside their 168 hours are
  not counted: the seats are those the line takes below the term's committed floor (the most
  the vendor held during the term, less seats still inside their 168 hours). The dollars (ours): seats × the vendor's unit cost per month × the vendor billing
  periods still to come in the term; beside it, what the customer will no longer be billed: seats ×
  the line's unit price per month × the same periods. A monthly-billed subscription's unit is a
  month; an annually-billed (paid up front) one's is a year, taken as 1/12 a month (ASSUMED: the
  MSP has paid, or will pay, the remaining months of the year at that rate). The periods are the
  monthly anniversaries of the term (`end_date + 1 day − k months`, k ≥ 1) that fall on or after
  the day the customer's billing stops (the update's first unbilled day, or the day after a
  cancelled line ends) [doc reddit r/msp quoting Pax8 support: "renewal dates are based on when the
  subscription was purchased … it will renew on June 1, July 1, and so on"]. Totals are rounded
  half-up to cents once (RULES.md §11).
* **Idle seats.** Where the PSA will bill fewer seats than the vendor charges for on a committed
  term (after this plan's lines), the difference is reported as `seats_reducible_at_renewal`:
  "reducible at renewal on DATE", DATE being the day the renewal window opens (today, when it is
  open now).

Everything here is pure: the scenario, the plan's lines and the instant in, findings out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from fractions import Fraction

from engine.money import fmt_money, fmt_quantity, round_cents
from engine.months import add_months, next_day
from engine.plan import Finding, LineKind, PlanLine
from engine.rules.findings import finding
from engine.scenario import Commitment, HistoryRow, Scenario, Subscription

COMMITTED_TERMS = frozenset({"annual", "two_year", "three_year"})
REDUCIBLE_FOR = timedelta(hours=168)  # [doc learn.microsoft.com … cancel-an-azure-marketplace-subscription]
DEFAULT_WINDOW_DAYS_AFTER = 7  # ASSUMED when Pax8's dependencies give no window (see the module doc)
DEFAULT_NOTICE_DAYS = 14
TERM_LABELS = {
    "monthly": "Monthly",
    "annual": "Annual",
    "two_year": "2-Year",
    "three_year": "3-Year",
    "trial": "Trial",
}
_ZERO = Decimal(0)


@dataclass(frozen=True)
class SeatWindow:
    """Seats added at `added_at` that can still be removed until `until` (UTC)."""

    added_at: datetime
    quantity: Decimal
    until: datetime


@dataclass(frozen=True)
class RenewalWindow:
    opens: date
    closes: date
    term_end: date

    def is_open(self, today: date) -> bool:
        return self.opens <= today <= self.closes

    def days_left(self, today: date) -> int:
        """Days until it closes, the closing day counted (1 on the last day)."""
        return (self.closes - today).days + 1


@dataclass(frozen=True)
class Renewal:
    """One row of the renewals report (`trueup renewals`, the Renewals pane)."""

    subscription_id: str
    company: str
    product: str
    term: str
    billing_term: str
    quantity: Decimal
    auto_renew: bool
    window: RenewalWindow
    state: str  # "open" or "upcoming"
    days_left: int
    monthly_cost: Decimal


def is_committed(commitment: Commitment | None) -> bool:
    return commitment is not None and commitment.term in COMMITTED_TERMS and commitment.end_date is not None


def utc_start(day: date) -> datetime:
    """The instant a plan for `day` judges the 168 hours at: 00:00 UTC of that day."""
    return datetime.combine(day, time(0), UTC)


def fmt_instant(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def reducible_seats(commitment: Commitment, now: datetime) -> list[SeatWindow]:
    """The seat additions of a committed subscription still inside their 168 hours at `now`."""
    if not is_committed(commitment):
        return []
    out = []
    for addition in sorted(commitment.seat_additions, key=lambda a: a.at):
        until = addition.at + REDUCIBLE_FOR
        if addition.at <= now < until and addition.quantity > 0:
            out.append(SeatWindow(addition.at.astimezone(UTC), addition.quantity, until.astimezone(UTC)))
    return out


def renewal_window(commitment: Commitment) -> RenewalWindow | None:
    if not is_committed(commitment):
        return None
    assert commitment.end_date is not None
    before, after = commitment.window_days_before, commitment.window_days_after
    if before == 0 and after == 0:
        after = DEFAULT_WINDOW_DAYS_AFTER  # a zero-day window is Pax8's "not given" (spec example)
    end = commitment.end_date
    return RenewalWindow(end - timedelta(days=before), end + timedelta(days=after), end)


def remaining_periods(commitment: Commitment, from_day: date) -> int:
    """The term's monthly billing periods that start on or after `from_day` (see the module doc)."""
    if commitment.end_date is None:
        return 0
    anniversary = next_day(commitment.end_date)
    count, k = 0, 1
    while True:
        start = add_months(anniversary, -k)
        if start < from_day:
            return count
        count += 1
        k += 1


TERM_MONTHS = {"annual": 12, "two_year": 24, "three_year": 36}


def term_start(commitment: Commitment) -> date | None:
    """The first day of the current term: the day after its end, one term length back."""
    if not is_committed(commitment):
        return None
    assert commitment.end_date is not None
    return add_months(next_day(commitment.end_date), -TERM_MONTHS[commitment.term])


def committed_floor(sub: Subscription, commitment: Commitment, now: datetime) -> Decimal:
    """The seats the term binds the MSP to at `now`: the most the vendor held during the term (the
    quantity in force when it began, then every change since), less the seats still inside their
    168 hours."""
    start = term_start(commitment)
    if start is None or not sub.history:
        return _ZERO
    in_force, peak = _ZERO, _ZERO
    for row in sub.history:
        if row.effective_date <= start:
            in_force = row.quantity
        else:
            peak = max(peak, row.quantity)
    peak = max(peak, in_force)
    refundable = sum((w.quantity for w in reducible_seats(commitment, now)), _ZERO)
    return max(peak - refundable, _ZERO)


def per_month(amount: Decimal, billing_term: str) -> Fraction:
    """A unit amount per month: an annually-billed unit is a year's (ASSUMED, module doc)."""
    value = Fraction(amount)
    return value / 12 if billing_term == "annual" else value


def current_quantity(sub: Subscription, quiet: Mapping[str, Decimal]) -> Decimal:
    if sub.id in quiet:
        return quiet[sub.id]
    return sub.history[-1].quantity if sub.history else _ZERO


@dataclass(frozen=True)
class _Context:
    scenario: Scenario
    today: date
    now: datetime
    within_days: int
    names: Mapping[str, str]


def commitment_findings(
    scenario: Scenario,
    lines: Sequence[PlanLine],
    *,
    now: datetime | None = None,
    within_days: int | None = None,
    quiet: Mapping[str, Decimal] | None = None,
    load_history: Callable[[str], list[HistoryRow]] | None = None,
) -> list[Finding]:
    """Every finding of the module's rules, for the plan's shown `lines`. `now` defaults to 00:00
    UTC of `as_of`; `quiet` gives the current quantity of subscriptions whose history was not read
    (the store's fast path), `load_history` reads it for one that has a line to judge."""
    commitments = {c.subscription_id: c for c in scenario.vendor.commitments if is_committed(c)}
    if not commitments:
        return []
    today = scenario.as_of
    when = now or utc_start(today)
    notice = scenario.settings.renewal_notice_days if within_days is None else within_days
    names = {c.id: c.name for c in scenario.vendor.companies}
    ctx = _Context(scenario, today, when, notice, names)
    subs = {s.id: s for s in scenario.vendor.subscriptions if s.id in commitments}
    by_sub: dict[str, list[PlanLine]] = {}
    for line in lines:
        if line.subscription_id in subs:
            by_sub.setdefault(line.subscription_id, []).append(line)
    out: list[Finding] = []
    for sub_id in sorted(subs):
        sub, commitment = subs[sub_id], commitments[sub_id]
        if not sub.history and by_sub.get(sub_id) and load_history is not None and sub_id in (quiet or {}):
            sub = sub.model_copy(update={"history": load_history(sub_id)})
        if sub.status != "active" and not by_sub.get(sub_id):
            continue
        out += _seat_windows(ctx, sub, commitment)
        out += _window_findings(ctx, sub, commitment)
        out += _cost_continues(ctx, sub, commitment, by_sub.get(sub_id, []))
        out += _idle_seats(ctx, sub, commitment, by_sub.get(sub_id, []), quiet or {})
    return out


def _label(ctx: _Context, sub: Subscription) -> str:
    return f"{ctx.names.get(sub.company_id, sub.company_id)}, subscription {sub.id}"


def _term(commitment: Commitment) -> str:
    return f"{TERM_LABELS[commitment.term]} term ending {commitment.end_date}"


def _seat_windows(ctx: _Context, sub: Subscription, commitment: Commitment) -> list[Finding]:
    return [
        finding(
            "seats_reducible_until",
            {"subscription_id": sub.id, "added_at": fmt_instant(w.added_at)},
            f"{_label(ctx, sub)}: {fmt_quantity(w.quantity)} seat(s) added {fmt_instant(w.added_at)} "
            f"are reducible until {fmt_instant(w.until)}; after that they are billed for the "
            f"{_term(commitment)}.",
        )
        for w in reducible_seats(commitment, ctx.now)
    ]


def _window_findings(ctx: _Context, sub: Subscription, commitment: Commitment) -> list[Finding]:
    window = renewal_window(commitment)
    if window is None or sub.status != "active":
        return []
    subject = {"subscription_id": sub.id}
    span = f"{window.opens}–{window.closes}"
    if window.is_open(ctx.today):
        days = window.days_left(ctx.today)
        return [
            finding(
                "renewal_window_open",
                subject,
                f"{_label(ctx, sub)}: the renewal window of its {_term(commitment)} is open ({span}): "
                f"{days} day(s) left to reduce or cancel at renewal.",
            )
        ]
    if ctx.today < window.opens and (window.term_end - ctx.today).days <= ctx.within_days:
        days = (window.closes - ctx.today).days
        renews = "renews automatically" if commitment.auto_renew else "ends"
        return [
            finding(
                "renewal_in_n_days",
                subject,
                f"{_label(ctx, sub)}: its {_term(commitment)} {renews} in "
                f"{(window.term_end - ctx.today).days} day(s); the window to reduce or cancel is {span}, "
                f"closing in {days} day(s).",
            )
        ]
    return []


def _reduction(line: PlanLine) -> Decimal:
    if line.kind is LineKind.CANCEL:
        return line.previous_quantity if line.previous_quantity is not None else line.quantity
    if line.kind is LineKind.RECURRING and line.action == "update" and line.previous_quantity is not None:
        return max(line.previous_quantity - line.quantity, _ZERO)
    return _ZERO


def _billing_stops(ctx: _Context, line: PlanLine) -> date:
    if line.kind is LineKind.CANCEL and line.end_date is not None:
        return next_day(line.end_date)
    return next_day(ctx.scenario.settings.invoiced_through_on(ctx.today))


@dataclass(frozen=True)
class CostContinues:
    seats: Decimal
    periods: int
    vendor_cost: Decimal
    customer_billing: Decimal


def cost_continues(
    sub: Subscription,
    commitment: Commitment,
    line: PlanLine,
    *,
    today: date,
    now: datetime,
    billing_stops: date,
) -> CostContinues | None:
    """What the MSP keeps paying the vendor for the seats `line` stops billing (module doc)."""
    removed = _reduction(line)
    window = renewal_window(commitment)
    if removed <= 0 or window is None or window.is_open(today):
        return None
    if line.kind is LineKind.CANCEL and commitment.allow_early_cancellation:
        return None
    if line.kind is LineKind.RECURRING and commitment.allow_decrease:
        return None
    floor = committed_floor(sub, commitment, now)
    seats = min(removed, max(floor - (_ZERO if line.kind is LineKind.CANCEL else line.quantity), _ZERO))
    periods = remaining_periods(commitment, billing_stops)
    if seats <= 0 or periods <= 0:
        return None
    factor = Fraction(seats) * periods
    return CostContinues(
        seats=seats,
        periods=periods,
        vendor_cost=round_cents(per_month(sub.unit_cost, sub.billing_term) * factor),
        customer_billing=round_cents(per_month(line.unit_price, sub.billing_term) * factor),
    )


def _cost_continues(
    ctx: _Context, sub: Subscription, commitment: Commitment, lines: Iterable[PlanLine]
) -> list[Finding]:
    out = []
    for line in lines:
        found = cost_continues(
            sub, commitment, line, today=ctx.today, now=ctx.now, billing_stops=_billing_stops(ctx, line)
        )
        if found is None:
            continue
        what = "cancels" if line.kind is LineKind.CANCEL else "reduces"
        fee = " A cancellation fee applies." if commitment.cancellation_fee else ""
        out.append(
            finding(
                "commitment_cost_continues",
                {"subscription_id": sub.id, "key": line.key},
                f"{_label(ctx, sub)}: this plan {what} billing by {fmt_quantity(found.seats)} seat(s) "
                f"outside the renewal window; the {_term(commitment)} keeps the vendor billing them: "
                f"the MSP still pays {fmt_money(found.vendor_cost)} over {found.periods} month(s), while "
                f"the customer will no longer be billed {fmt_money(found.customer_billing)}.{fee}",
            )
        )
    return out


def billed_after_plan(scenario: Scenario, sub: Subscription, lines: Sequence[PlanLine]) -> Decimal | None:
    """The seats the PSA bills for `sub` once this plan is written; None when no PSA line bills it."""
    for line in lines:
        if line.kind is LineKind.CANCEL:
            return _ZERO
    for line in lines:
        if line.kind is LineKind.RECURRING:
            return line.quantity
    held = [
        line.quantity
        for line in scenario.psa.lines
        if line.kind == "recurring"
        and line.source is not None
        and line.source.subscription_id == sub.id
        and (line.cancelled_date is None or line.cancelled_date > scenario.as_of)
    ]
    return sum(held, _ZERO) if held else None


def _idle_seats(
    ctx: _Context,
    sub: Subscription,
    commitment: Commitment,
    lines: Sequence[PlanLine],
    quiet: Mapping[str, Decimal],
) -> list[Finding]:
    window = renewal_window(commitment)
    if window is None or sub.status != "active":
        return []
    billed = billed_after_plan(ctx.scenario, sub, lines)
    if billed is None:
        return []
    idle = current_quantity(sub, quiet) - billed
    if idle <= 0:
        return []
    on = ctx.today if window.is_open(ctx.today) else window.opens
    monthly = round_cents(per_month(sub.unit_cost, sub.billing_term) * Fraction(idle))
    return [
        finding(
            "seats_reducible_at_renewal",
            {"subscription_id": sub.id},
            f"{_label(ctx, sub)}: the vendor charges for {fmt_quantity(idle)} seat(s) more than the "
            f"customer is billed ({fmt_money(monthly)} a month); the {_term(commitment)} holds them: "
            f"reducible at renewal on {on} (window {window.opens}–{window.closes}).",
        )
    ]


def renewals(
    scenario: Scenario,
    *,
    today: date,
    within_days: int | None = None,
    quiet: Mapping[str, Decimal] | None = None,
) -> list[Renewal]:
    """Committed, active subscriptions whose renewal window is open or still to come, soonest
    closing first; `within_days` keeps those whose window is open or whose term ends within that
    many days."""
    subs = {s.id: s for s in scenario.vendor.subscriptions}
    companies = {c.id: c.name for c in scenario.vendor.companies}
    products = {p.id: p.name for p in scenario.vendor.products}
    out = []
    for commitment in scenario.vendor.commitments:
        sub = subs.get(commitment.subscription_id)
        window = renewal_window(commitment)
        if sub is None or window is None or sub.status != "active" or window.closes < today:
            continue
        days_left = window.days_left(today)
        if (
            within_days is not None
            and not window.is_open(today)
            and (window.term_end - today).days > within_days
        ):
            continue
        quantity = current_quantity(sub, quiet or {})
        out.append(
            Renewal(
                subscription_id=sub.id,
                company=companies.get(sub.company_id, sub.company_id),
                product=products.get(sub.product_id, sub.product_id),
                term=TERM_LABELS[commitment.term],
                billing_term=sub.billing_term,
                quantity=quantity,
                auto_renew=commitment.auto_renew,
                window=window,
                state="open" if window.is_open(today) else "upcoming",
                days_left=days_left,
                monthly_cost=round_cents(per_month(sub.unit_cost, sub.billing_term) * Fraction(quantity)),
            )
        )
    out.sort(key=lambda r: (r.window.closes, r.company, r.subscription_id))
    return out


def describe_term(commitment: Commitment, billing_term: str) -> str:
    """One line for a subscription's detail: its term, how it is paid, its end and renewal window."""
    paid = "paid up front" if billing_term == "annual" else "paid monthly"
    text = f"Term: {TERM_LABELS[commitment.term]} ({paid})"
    if commitment.end_date is not None:
        text += f", ends {commitment.end_date.isoformat()}"
    window = renewal_window(commitment)
    if window is not None:
        text += f" · renewal window {window.opens}–{window.closes}"
        text += " · renews automatically" if commitment.auto_renew else " · does not renew"
    return text
