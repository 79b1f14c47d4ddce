"""The plan: every line that confirming the sync would write, and the findings that block or warn."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.keys import change_set_key
from engine.scenario import BillOption


class LineKind(StrEnum):
    RECURRING = "recurring"
    CANCEL = "cancel"
    PRORATE = "prorate"
    EXTRA_MONTHS = "extra_months"
    ARREARS = "arrears"
    USAGE_SUMMARY = "usage_summary"
    USAGE = "usage"
    PRICE = "price"  # a seat line's price/cost update after a vendor price change (engine.rules.leaks)

    @property
    def one_time(self) -> bool:
        return self in (LineKind.PRORATE, LineKind.EXTRA_MONTHS)


KIND_ORDER = {kind: i for i, kind in enumerate(LineKind)}

# The kinds RULES.md §3 writes together for one subscription's change: its recurring update (or
# cancellation), its prorates and its extra months — one change set.
# A price update (engine.rules.leaks) is the recurring update with new prices: in the same set.
CHANGE_SET_KINDS = frozenset(
    {LineKind.RECURRING, LineKind.CANCEL, LineKind.PRORATE, LineKind.EXTRA_MONTHS, LineKind.PRICE}
)

Action = Literal["create", "update", "cancel"]
Severity = Literal["error", "warning"]


class PlanLine(BaseModel):
    model_config = ConfigDict(frozen=True)

    key: str
    kind: LineKind
    action: Action
    subscription_id: str
    company_id: str
    psa_agreement_id: str
    psa_product_id: str
    psa_line_id: str | None = None
    description: str
    quantity: Decimal
    unit_price: Decimal
    unit_cost: Decimal
    total_price: Decimal
    total_cost: Decimal
    effective_date: date
    end_date: date | None = None
    period_start: date | None = None
    period_end: date | None = None
    months: int | None = None
    sub_product: str | None = None
    provisional: bool = Field(False, description="Usage whose period is not final yet (day-3 / day-5 rules).")
    formula: str = Field("", description="How the figures were produced, for the operator.")
    previous_quantity: Decimal | None = Field(None, description="Updates/cancels: what the PSA holds now.")
    previous_unit_price: Decimal | None = Field(
        None, description="Price updates: the unit price the PSA line holds now."
    )
    previous_unit_cost: Decimal | None = Field(None, description="Price updates: the unit cost it holds now.")
    replaces_line_id: str | None = Field(
        None, description="Create-new: the PSA line that gets cancelled the day before this one starts."
    )
    fingerprint: str = Field("", description="The line's values; an 'ignore this change' compares it.")
    records: tuple[str, ...] = Field(
        (),
        description="Keys recorded as synced when this line is written: the subscription's zero-value "
        "prorates, which are not plan lines (RULES.md §2).",
    )
    # issue 13: the binding's, written on the line (None: the PSA product's tax default)
    taxable: bool | None = Field(
        None, description="Written taxable / not taxable; null: the product's default."
    )
    bill_option: BillOption = Field("billable", description="How the PSA bills the line to the customer.")
    # issue 13: an update that changes how the PSA bills an existing line (read back from the PSA)
    previous_bill_option: BillOption | None = Field(
        None, description="Option updates: the bill option the PSA line holds now (null: unchanged)."
    )
    previous_taxable: bool | None = Field(
        None, description="Option updates: the taxable flag the PSA line holds now (null: unchanged)."
    )

    @property
    def options_change(self) -> bool:
        """The update rewrites the PSA line's bill option or taxable flag (issue 13)."""
        return self.previous_bill_option is not None or self.previous_taxable is not None

    @property
    def billed(self) -> bool:
        """The customer is billed for the line: a do-not-bill / no-charge line bills $0 (its cost
        stays the MSP's)."""
        return self.bill_option == "billable"

    @property
    def change_set(self) -> str:
        """The change set the line is written with (RULES.md §3): a seat subscription's recurring
        update, prorates and extra months share one; any other line is a set of its own."""
        if self.kind in CHANGE_SET_KINDS:
            return change_set_key(self.subscription_id)
        return self.key

    @property
    def record_only(self) -> bool:
        """A one-time line worth nothing: its key is recorded as synced, nothing is written to the PSA."""
        return self.kind.one_time and self.total_price == 0 and self.total_cost == 0


class Finding(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: str
    severity: Severity
    subject: dict[str, str]
    message: str
    hint: str = Field("", description="What clears it.")


class Totals(BaseModel):
    price: Decimal
    cost: Decimal
    ignored: int = 0


class Plan(BaseModel):
    as_of: date
    invoiced_through: date
    lines: list[PlanLine]
    findings: list[Finding]
    totals: Totals
    ignored_lines: list[PlanLine] = Field(default_factory=list, exclude=True)
