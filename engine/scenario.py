"""The scenario: a frozen picture of one partner's world (see shared/contract/SCENARIO.md).

What the vendor says, what the PSA holds, the mappings between them, and what was synced, ignored
or overridden before. `trueup plan` reads it from a file; `trueup export-scenario` writes it from
the store; the reconciliation reads the same type from either. Unknown keys are an error.

What a value may be (issue 11, "bad input, everywhere"), wherever it comes from — a scenario file or
a service's data becoming these models in a connector:
- numbers are finite, at most 38 digits, below 10^12, at most 12 decimal places; given as text they
  are plain ASCII (`"25.00"`, not `" 25 "`, `"1_000"` or `"٣"`); quantities and the prices of a
  vendor subscription, usage row or binding are never negative;
- dates are `YYYY-MM-DD` (or a date), in 1900–2999; a number is not a date;
- text has no control characters (C0, C1, DEL; tab and newline only in descriptions and reasons),
  no bidi overrides, no lone surrogates, and a length cap.
A scenario read from a file (validation context `{"source": "file"}`, `engine.scenario_io`) is
held to more: money has at most 2 decimal places, and every reference names something the scenario
holds (a subscription's company and product, usage's subscription, mappings' ids…).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    model_validator,
)
from pydantic_core import PydanticCustomError

from engine.months import last_of_month
from engine.psa import PsaName as PsaName  # the registry owns the PSA names; re-exported here

# --- what a value may be -------------------------------------------------------------------------

FILE_CONTEXT = {"source": "file"}  # the validation context of a scenario read from a file

# No C0 control (but, in multi-line text, tab and newline), DEL, C1 or bidi control (pydantic-core's
# regex: checked in Rust, no Python call per string). A lone surrogate fails as `string_unicode`.
_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
# Literal characters (not escapes), so that pydantic-core, Python's re and JSON Schema read it alike.
_LINE = "^[^\x00-\x1f\x7f-\x9f" + _BIDI + "]*$"
_LINES = "^[^\x00-\x08\x0b-\x1f\x7f-\x9f" + _BIDI + "]*$"
MAX_ID, MAX_NAME, MAX_TEXT = 255, 500, 4000

Id = Annotated[str, Field(min_length=1, max_length=MAX_ID, pattern=_LINE)]
Name = Annotated[str, Field(max_length=MAX_NAME, pattern=_LINE)]
Text = Annotated[str, Field(max_length=MAX_TEXT, pattern=_LINES)]
ProductKind = Literal["seat", "endpoint_usage", "usage_summary", "quota"]
# How a PSA bills a line to the customer (seed 001's review rows "Bill Options: Billable / Taxable";
# ConnectWise `Addition.billCustomer` Billable | DoNotBill | NoCharge, APIS.md §2.8). Anything but
# "billable" bills the customer $0 for the line; its cost stays the MSP's.
BillOption = Literal["billable", "do_not_bill", "no_charge"]
BILL_OPTION_LABELS: dict[BillOption, str] = {
    "billable": "Billable",
    "do_not_bill": "Do not bill",
    "no_charge": "No charge",
}

MAX_DIGITS = 38  # a number written with more digits is refused outright
MAX_INTEGER_DIGITS = 12  # below 10^12: products and sums stay exact in Decimal's 28 digits
MAX_PLACES = 12
MONEY_PLACES = 2
_NUMBER_TEXT = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]{1,6})?|-?\.[0-9]+", re.ASCII)
_CENT = Decimal("0.01")


def _number(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
        raise ValueError("not a decimal number")
    if isinstance(value, str):
        if len(value) > MAX_DIGITS + 12 and _NUMBER_TEXT.fullmatch(value):
            raise ValueError(f"too many digits (at most {MAX_DIGITS})")
        if not _NUMBER_TEXT.fullmatch(value):
            raise ValueError("not a decimal number" + _why_not_a_number(value))
        value = Decimal(value)
    elif isinstance(value, int):
        if value.bit_length() > 4 * MAX_DIGITS:  # cheap bound before str(): ≥ 39 digits for sure
            raise ValueError(f"too many digits (at most {MAX_DIGITS})")
        value = Decimal(value)
    elif isinstance(value, float):
        value = Decimal(repr(value))  # a YAML number; repr keeps what was written
    number: Decimal = value  # every branch above made it one
    if not number.is_finite():
        raise ValueError("not a finite number")
    if len(number.as_tuple().digits) > MAX_DIGITS:
        raise ValueError(f"too many digits (at most {MAX_DIGITS})")
    if number and number.adjusted() >= MAX_INTEGER_DIGITS:
        raise ValueError(f"too large (at most {MAX_INTEGER_DIGITS} digits before the decimal point)")
    if number and number.normalize().as_tuple().exponent < -MAX_PLACES:  # type: ignore[operator]  # finite, so an int exponent (typeshed: int | 'n' | 'N' | 'F')
        raise ValueError(f"too many decimal places (at most {MAX_PLACES})")
    return number


def _why_not_a_number(text: str) -> str:
    if text.strip() != text:
        return " (spaces around it)"
    if "_" in text:
        return " (no _ separators)"
    if any(ch.isdigit() and not ch.isascii() for ch in text):
        return " (ASCII digits only)"
    return ""


def _non_negative(value: Any) -> Decimal:
    number = _number(value)
    if number < 0:
        raise ValueError("must not be negative")
    return number


def _from_file(info: ValidationInfo, rule: str = "source") -> bool:
    context = info.context or {}
    return context.get("source") == "file" and context.get(rule, True) is not False


def _cents(value: Decimal, info: ValidationInfo) -> Decimal:
    if _from_file(info) and value != value.quantize(_CENT):
        raise ValueError(f"more than {MONEY_PLACES} decimal places (money is in cents)")
    return value


Number = Annotated[Decimal, BeforeValidator(_number)]
Quantity = Annotated[Decimal, BeforeValidator(_non_negative)]
# Money that may be negative (a PSA's discount line, a usage credit) and money that may not.
SignedMoney = Annotated[Decimal, BeforeValidator(_number), AfterValidator(_cents)]
Money = Annotated[Decimal, BeforeValidator(_non_negative), AfterValidator(_cents)]

_DATE_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
NOT_A_DATE = "not a date (expected YYYY-MM-DD)"
FIRST_YEAR, LAST_YEAR = 1900, 2999


def _date_input(value: Any) -> Any:
    if isinstance(value, datetime):
        return value  # pydantic takes a midnight datetime as its date, refuses any other
    if isinstance(value, date):
        return value
    if isinstance(value, str) and _DATE_TEXT.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ValueError(NOT_A_DATE) from None
    raise ValueError(NOT_A_DATE)  # a number is not a date (0 would be 1970-01-01)


def _date_range(value: date) -> date:
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ValueError(f"outside {FIRST_YEAR}–{LAST_YEAR}")
    return value


Day = Annotated[date, BeforeValidator(_date_input), AfterValidator(_date_range)]

_MONTH = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])$", re.ASCII)


def _check_month(value: str) -> str:
    if not _MONTH.match(value):
        raise ValueError("not a month (expected YYYY-MM)")
    if not FIRST_YEAR <= int(value[:4]) <= LAST_YEAR:
        raise ValueError(f"outside {FIRST_YEAR}–{LAST_YEAR}")
    return value


Month = Annotated[str, Field(max_length=7), AfterValidator(_check_month)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _no_duplicates(items: Sequence[Any], name: str, key: Callable[[Any], Hashable], what: str) -> None:
    """Refuse two items with the same identity: `usage[5] repeats usage[2] (same …)`."""
    seen: dict[Hashable, int] = {}
    for index, item in enumerate(items):
        k = key(item)
        if k in seen:
            raise ValueError(f"{name}[{index}] repeats {name}[{seen[k]}] (same {what})")
        seen[k] = index


# What a vendor price/cost change proposes for the PSA line (engine.rules.leaks rule 3).
PriceChangePolicy = Literal["follow_retail", "keep_and_warn", "keep_margin"]
PRICE_CHANGE_POLICIES: tuple[PriceChangePolicy, ...] = ("follow_retail", "keep_and_warn", "keep_margin")


class Settings(Model):
    invoiced_through: Day | None = Field(
        None, description="Last day already invoiced to customers; null = last day of as_of's month."
    )
    threshold_prorates: bool = Field(
        True, description="Prorate only seats above the month's high-water mark."
    )
    prorate_counts_change_day: bool = Field(False, description="Count the change day itself in the factor.")
    psa: PsaName = "connectwise"
    description_prefix: Name = Field("Pax8", description="Prefix of generated line descriptions.")
    renewal_notice_days: int = Field(
        14, ge=0, le=3650, description="renewal_in_n_days: warn when a renewal window closes this soon."
    )
    price_change_policy: PriceChangePolicy = Field(
        "follow_retail",
        description="What a vendor price/cost change proposes for the PSA line (engine.rules.leaks): "
        "follow_retail, keep_and_warn or keep_margin.",
    )

    def invoiced_through_on(self, as_of: date) -> date:
        """The last day already invoiced: the setting, else the last day of as_of's month."""
        return self.invoiced_through or last_of_month(as_of)


# --- vendor side ---------------------------------------------------------------------------------


class VendorCompany(Model):
    id: Id
    name: Name
    status: Literal["active", "inactive"] = "active"


class VendorProduct(Model):
    id: Id
    sku: Name | None = None
    name: Name
    kind: ProductKind = "seat"
    sub_products: list[Name] = Field(default_factory=list, description="endpoint_usage only: Business, Pro…")
    edition: Name | None = Field(
        None,
        description="Quota products: the vendor edition (per workload / per gigabyte). "
        "Null: taken from a `pw-`/`pg-` SKU prefix.",
    )
    service: Literal["licence", "backup_storage", "disaster_recovery", "geo_redundancy"] | None = Field(
        None, description="Quota/backup products: what the offering item is."
    )
    storage_location: Name | None = Field(None, description="Backup storage / disaster recovery location.")
    parent_product_id: Name | None = Field(
        None, description="Geo-redundancy items: the storage item they copy."
    )


class HistoryRow(Model):
    id: Id
    action: Literal["initial", "increase", "decrease", "cancel"]
    quantity: Quantity = Field(description="The quantity after the change.")
    effective_date: Day


class Subscription(Model):
    id: Id
    company_id: Id
    product_id: Id
    billing_term: Literal["monthly", "annual"] = "monthly"
    start_date: Day
    end_date: Day | None = None
    unit_price: Money
    unit_cost: Money
    status: Literal["active", "cancelled"] = "active"
    cancelled_date: Day | None = None
    history: list[HistoryRow] = Field(default_factory=list)
    gone: bool = Field(
        False,
        description="No longer listed by the vendor (deleted there); the store keeps it so that "
        "vendor_subscription_gone can see it (engine.rules.leaks).",
    )

    @model_validator(mode="after")
    def _unique_history(self) -> Subscription:
        _no_duplicates(self.history, "history", lambda h: h.id, "id")
        return self


class UsageRow(Model):
    subscription_id: Id
    sub_product: Name | None = None
    period: Month
    quantity: Quantity
    unit_price: Money = Decimal("0")
    unit_cost: Money = Decimal("0")
    snapshot_date: Day | None = None
    charges: SignedMoney | None = Field(None, description="Usage summaries: the period's customer charges.")
    partner_total: SignedMoney | None = Field(
        None, description="Usage summaries: the period's partner total."
    )


class BillingConfiguration(Model):
    """A backup-statistics billing configuration (seed 002): several products billed as one line."""

    id: Id
    company_id: Id
    name: Name
    mode: Literal["average", "total", "quantity_only"]
    subscription_ids: list[Id] = Field(min_length=1)
    psa_product_id: Name | None = Field(
        None, description="Null: the binding of the first subscription's product."
    )


# --- commitment terms (issue 15; the rules are engine.rules.commitments) ---------------------------

CommitmentTermName = Literal["monthly", "annual", "two_year", "three_year", "trial"]


def _instant_range(value: datetime) -> datetime:
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ValueError(f"outside {FIRST_YEAR}–{LAST_YEAR}")
    return value


Instant = Annotated[AwareDatetime, AfterValidator(_instant_range)]


class SeatAddition(Model):
    at: Instant = Field(description="When the seats were added (an instant with its UTC offset).")
    quantity: Quantity = Field(description="How many seats were added then.")


class Commitment(Model):
    """A subscription's commitment term (Pax8 `commitmentTerm`) and its product's commitment rules
    (Pax8 `/products/{id}/dependencies` → `commitmentDependencies[]`)."""

    subscription_id: Id
    term: CommitmentTermName
    end_date: Day | None = Field(None, description="The term's end (commitmentTerm.endDate).")
    auto_renew: bool = True
    window_days_before: int = Field(0, ge=0, le=3650, description="renewalWindowDaysBeforeTermEnd")
    window_days_after: int = Field(7, ge=0, le=3650, description="renewalWindowDaysAfterTermEnd")
    allow_decrease: bool = Field(False, description="allowForQuantityDecrease")
    allow_early_cancellation: bool = Field(False, description="allowForEarlyCancellation")
    cancellation_fee: bool = Field(False, description="cancellationFeeApplied")
    seat_additions: list[SeatAddition] = Field(default_factory=list)


class Vendor(Model):
    companies: list[VendorCompany] = Field(default_factory=list)
    products: list[VendorProduct] = Field(default_factory=list)
    subscriptions: list[Subscription] = Field(default_factory=list)
    usage: list[UsageRow] = Field(default_factory=list)
    billing_configurations: list[BillingConfiguration] = Field(default_factory=list)
    commitments: list[Commitment] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> Vendor:
        _no_duplicates(self.companies, "companies", lambda c: c.id, "id")
        _no_duplicates(self.products, "products", lambda p: p.id, "id")
        _no_duplicates(self.subscriptions, "subscriptions", lambda s: s.id, "id")
        _no_duplicates(
            [h for s in self.subscriptions for h in s.history],
            "history rows",
            lambda h: h.id,
            "id, across subscriptions",
        )
        _no_duplicates(
            self.usage,
            "usage",
            lambda u: (u.subscription_id, u.sub_product, u.period),
            "subscription_id, sub_product and period",
        )
        _no_duplicates(self.billing_configurations, "billing_configurations", lambda c: c.id, "id")
        _no_duplicates(self.commitments, "commitments", lambda c: c.subscription_id, "subscription_id")
        return self


# --- PSA side ------------------------------------------------------------------------------------


class PsaCompany(Model):
    id: Id
    name: Name


class PsaProduct(Model):
    id: Id
    name: Name
    sku: Name | None = None
    unit_price: SignedMoney | None = Field(None, description="Catalogue price (quantity-only lines use it).")
    unit_cost: SignedMoney | None = None


class PsaAgreement(Model):
    id: Id
    company_id: Id
    name: Name
    start_date: Day
    end_date: Day | None = None
    billing_period: Literal["monthly", "annual"] = "monthly"


class LineSource(Model):
    subscription_id: Name | None = None
    sub_product: Name | None = None
    key: Name | None = None


class PsaLine(Model):
    id: Id
    agreement_id: Id
    product_id: Id
    kind: Literal["recurring", "one_time"] = "recurring"
    quantity: Number
    unit_price: SignedMoney
    unit_cost: SignedMoney
    effective_date: Day
    cancelled_date: Day | None = None
    description: Text = ""
    metered: bool = False
    source: LineSource | None = None
    # How the PSA bills the line, when its connector reads it (ConnectWise: `taxableFlag`,
    # `billCustomer`); None: not known (not read, or the PSA has no such field per line).
    taxable: bool | None = None
    bill_option: BillOption | None = None


class Psa(Model):
    companies: list[PsaCompany] = Field(default_factory=list)
    products: list[PsaProduct] = Field(default_factory=list)
    agreements: list[PsaAgreement] = Field(default_factory=list)
    lines: list[PsaLine] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> Psa:
        for name, items in (
            ("companies", self.companies),
            ("products", self.products),
            ("agreements", self.agreements),
            ("lines", self.lines),
        ):
            _no_duplicates(items, name, lambda x: x.id, "id")
        return self


# --- what binds the two, and what the operator did -----------------------------------------------


class CompanyMapping(Model):
    vendor_id: Id
    psa_id: Id


class ProductBinding(Model):
    vendor_product_id: Id
    sub_product: Name | None = None
    psa_product_id: Id
    free: bool = False
    taxable: bool | None = Field(
        None, description="Lines are written taxable / not; None: the PSA product's default."
    )
    bill_option: BillOption = Field("billable", description="How the PSA bills the lines to the customer.")
    unit_price: Money | None = Field(None, description="Overrides the vendor's retail price.")
    unit_cost: Money | None = Field(None, description="Overrides the vendor's partner cost.")


class AgreementMapping(Model):
    vendor_company_id: Id
    psa_agreement_id: Id


class Mappings(Model):
    companies: list[CompanyMapping] = Field(default_factory=list)
    products: list[ProductBinding] = Field(default_factory=list)
    agreements: list[AgreementMapping] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> Mappings:
        _no_duplicates(self.companies, "companies", lambda m: (m.vendor_id, m.psa_id), "vendor_id and psa_id")
        _no_duplicates(
            self.products,
            "products",
            lambda b: (b.vendor_product_id, b.sub_product),
            "vendor_product_id and sub_product",
        )
        _no_duplicates(self.agreements, "agreements", lambda m: m.vendor_company_id, "vendor_company_id")
        return self


class SyncedKey(Model):
    key: Id
    quantity: Quantity | None = None
    synced_on: Day
    psa_line_id: Name | None = None


class Ignore(Model):
    key: Id = Field(description="A plan line's key, or a subscription id (every line of it).")
    mode: Literal["until_restored", "this_change"] = "until_restored"
    by: Name
    on: Day
    reason: Text | None = None
    fingerprint: Name | None = Field(None, description="this_change: the line as it was when ignored.")


class Override(Model):
    key: Id = Field(description="The plan line's key.")
    effective_date: Day | None = None
    create_new: bool = Field(False, description="Recurring lines: create a new line, cancel the old one.")


class Scenario(Model):
    as_of: Day
    settings: Settings = Field(default_factory=Settings)
    vendor: Vendor = Field(default_factory=Vendor)
    psa: Psa = Field(default_factory=Psa)
    mappings: Mappings = Field(default_factory=Mappings)
    synced: list[SyncedKey] = Field(default_factory=list)
    ignored: list[Ignore] = Field(default_factory=list)
    overrides: list[Override] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self, info: ValidationInfo) -> Scenario:
        for name, items in (
            ("synced", self.synced),
            ("ignored", self.ignored),
            ("overrides", self.overrides),
        ):
            _no_duplicates(items, name, lambda x: x.key, "key")
        if _from_file(info, "references"):
            problems = dangling_references(self)
            if problems:  # each problem names its own path (engine.scenario_io lists them)
                raise PydanticCustomError(
                    "dangling_reference", "{problems}", {"problems": "\n".join(problems)}
                )
        return self


def dangling_references(scenario: Scenario) -> list[str]:
    """`path: no vendor company 'x'` for every reference to something the scenario does not hold.
    (A mapping to a PSA agreement that is gone is not one: that is the `no_active_agreement`
    finding, as the store can hold such a mapping after the agreement ended.)"""
    v, p, m = scenario.vendor, scenario.psa, scenario.mappings
    vendor_companies = {c.id for c in v.companies}
    vendor_products = {x.id for x in v.products}
    subscriptions = {x.id for x in v.subscriptions}
    psa_companies = {c.id for c in p.companies}
    psa_products = {x.id for x in p.products}
    agreements = {a.id for a in p.agreements}
    problems: list[str] = []

    def check(path: str, value: str | None, known: set[str], what: str) -> None:
        if value is not None and value not in known:
            problems.append(f"{path}: no {what} {value!r} in the scenario")

    def each(name: str, items: Iterable[Any]) -> Iterable[tuple[str, Any]]:
        return ((f"{name}[{i}]", item) for i, item in enumerate(items))

    for at, product in each("vendor.products", v.products):
        check(f"{at}.parent_product_id", product.parent_product_id, vendor_products, "vendor product")
    for at, sub in each("vendor.subscriptions", v.subscriptions):
        check(f"{at}.company_id", sub.company_id, vendor_companies, "vendor company")
        check(f"{at}.product_id", sub.product_id, vendor_products, "vendor product")
    for at, row in each("vendor.usage", v.usage):
        check(f"{at}.subscription_id", row.subscription_id, subscriptions, "subscription")
    for at, conf in each("vendor.billing_configurations", v.billing_configurations):
        check(f"{at}.company_id", conf.company_id, vendor_companies, "vendor company")
        for i, sub_id in enumerate(conf.subscription_ids):
            check(f"{at}.subscription_ids[{i}]", sub_id, subscriptions, "subscription")
        check(f"{at}.psa_product_id", conf.psa_product_id, psa_products, "PSA product")
    for at, commitment in each("vendor.commitments", v.commitments):
        check(f"{at}.subscription_id", commitment.subscription_id, subscriptions, "subscription")
    for at, agreement in each("psa.agreements", p.agreements):
        check(f"{at}.company_id", agreement.company_id, psa_companies, "PSA company")
    for at, line in each("psa.lines", p.lines):
        check(f"{at}.agreement_id", line.agreement_id, agreements, "PSA agreement")
        check(f"{at}.product_id", line.product_id, psa_products, "PSA product")
    for at, mapping in each("mappings.companies", m.companies):
        check(f"{at}.vendor_id", mapping.vendor_id, vendor_companies, "vendor company")
        check(f"{at}.psa_id", mapping.psa_id, psa_companies, "PSA company")
    for at, binding in each("mappings.products", m.products):
        check(f"{at}.vendor_product_id", binding.vendor_product_id, vendor_products, "vendor product")
        check(f"{at}.psa_product_id", binding.psa_product_id, psa_products, "PSA product")
    for at, agreement_mapping in each("mappings.agreements", m.agreements):
        check(
            f"{at}.vendor_company_id", agreement_mapping.vendor_company_id, vendor_companies, "vendor company"
        )
    return problems
