"""What the engine asks of a vendor and of a PSA. Each connector module implements one of these."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Literal, Protocol

import httpx

from engine.scenario import (
    BillOption,
    PsaAgreement,
    PsaCompany,
    PsaLine,
    PsaName,
    PsaProduct,
    Subscription,
    UsageRow,
    VendorCompany,
    VendorProduct,
)
from engine.scrub import clean_text, redact


class ServiceError(Exception):
    """Any failure talking to a service, carrying the service's own message.

    `status` is the HTTP status (None for a transport failure or timeout). `retryable` says whether
    the same request may be sent again as is (reads only; writes are resolved by lookup instead).
    `sent` is True when the request may have reached the service (a timeout after sending, a 5xx):
    a write in that state must be looked up before anything is re-sent.
    """

    def __init__(
        self,
        service: str,
        message: str,
        *,
        status: int | None = None,
        details: Sequence[str] = (),
        retryable: bool = False,
        sent: bool = True,
        retry_after: float | None = None,
    ) -> None:
        self.service = service
        # What a service says goes to the journal, the audit trail, logs and the screen: secrets
        # it echoes back (request headers in an error body) are replaced here, once.
        self.message = redact(clean_text(message, newlines=True))
        self.status = status
        self.details = [redact(clean_text(str(d), newlines=True)) for d in details]
        self.retryable = retryable
        self.sent = sent
        self.retry_after = retry_after
        text = f"{service}: {self.message}"
        if status is not None:
            text = f"{service} (HTTP {status}): {self.message}"
        if self.details:
            text += " — " + "; ".join(self.details)
        super().__init__(text)

    @property
    def rejected(self) -> bool:
        """The service refused the request (validation, permissions): sending it again won't help."""
        return self.status is not None and 400 <= self.status < 500 and self.status not in (408, 429)


class VendorConnector(Protocol):
    """A source of subscriptions and usage (Pax8-shaped)."""

    name: str

    async def companies(self) -> list[VendorCompany]: ...

    async def company(self, company_id: str) -> VendorCompany | None:
        """One company; None when the vendor does not know it."""
        ...

    async def products(self, product_ids: Iterable[str] | None = None) -> list[VendorProduct]:
        """The products the subscriptions use (only `product_ids` when given: a refresh that has
        just listed the subscriptions passes the ids it saw, so they are not listed again)."""
        ...

    async def subscriptions(
        self,
        *,
        changed_since: datetime | None = None,
        company_id: str | None = None,
        known: Mapping[str, Subscription] | None = None,
    ) -> list[Subscription]:
        """Subscriptions with their history (of `company_id` only when given); only those updated
        since `changed_since` when given without `known`. With `known` (the store's copies of that
        scope): every subscription, those unchanged since `changed_since` returned as known without
        reading their history again."""
        ...

    async def usage(self, subscriptions: Sequence[Subscription], *, period: str) -> list[UsageRow]:
        """Usage rows for the month `period` (YYYY-MM) of the given arrears/usage subscriptions."""
        ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class LineWrite:
    """One line to create in the PSA. `key` is the plan line's key: the connector stores it in a
    field the PSA keeps and returns (documented per connector), so that a lookup finds the line
    after a crash or a timeout."""

    key: str
    agreement_id: str
    product_id: str
    kind: Literal["recurring", "one_time"]
    quantity: Decimal
    unit_price: Decimal
    unit_cost: Decimal
    effective_date: date
    end_date: date | None
    description: str
    subscription_id: str | None = None
    sub_product: str | None = None
    # Extra-months lines (RULES.md §3): `quantity` is the seat gap per month and `months` the run's
    # length; the PSA must invoice quantity × unit price × months once. Each connector says how it
    # carries the months (None for every other kind).
    months: int | None = None
    period_start: date | None = None
    period_end: date | None = None
    # Quota pay-as-you-go / overage lines (RULES.md §6): the line is the metered one. Each connector
    # says where the flag lives in its PSA.
    metered: bool = False
    # The binding's (issue 13): taxable None = the PSA product's default. A connector whose PSA has
    # no such fields per line (engine.psa capabilities) refuses anything else before sending.
    taxable: bool | None = None
    bill_option: BillOption = "billable"


@dataclass(frozen=True)
class ProductSpec:
    """A product to create in the PSA's catalogue (seed 001 "Export Product", seed 004's wizard):
    each connector says which fields carry what."""

    name: str
    sku: str | None
    unit_price: Decimal
    unit_cost: Decimal
    recurring: bool = True
    taxable: bool = False
    # the PSA's product group, by name: ConnectWise's catalog subcategory (required there); a PSA
    # whose catalogue trueup does not group refuses a category rather than drop it
    category: str | None = None


@dataclass(frozen=True)
class LineUpdate:
    """Changes to an existing PSA line. Only the fields that are not None are written."""

    key: str
    line_id: str
    agreement_id: str
    quantity: Decimal | None = None
    unit_price: Decimal | None = None
    unit_cost: Decimal | None = None
    cancelled_date: date | None = None
    effective_date: date | None = None  # Autotask: when a quantity change takes effect
    previous_quantity: Decimal | None = None
    # The binding's, written only when it says more than the defaults (a default binding leaves the
    # PSA line's own setting alone; the landed check still reports a line that will not be billed).
    taxable: bool | None = None
    bill_option: BillOption | None = None


class PsaConnector(Protocol):
    """A PSA where billing lines are written (ConnectWise Manage, HaloPSA, Autotask)."""

    @property
    def name(self) -> PsaName: ...  # read-only, so a connector's own `Literal` name satisfies it

    async def companies(self) -> list[PsaCompany]: ...

    async def products(self) -> list[PsaProduct]: ...

    async def agreements(self) -> list[PsaAgreement]: ...

    async def company_billing(self, company_id: str) -> tuple[list[PsaAgreement], list[PsaLine]]:
        """One PSA company's active agreements and their lines (what `agreements()` and `lines()`
        give for that company), read with the PSA's company filter."""
        ...

    async def lines(self, agreement_ids: Sequence[str] | None = None) -> list[PsaLine]:
        """Lines of the given agreements (all active agreements when None), with `source.key` set
        from the key-carrying field for lines trueup wrote."""
        ...

    async def find_line(self, agreement_id: str, key: str, expect: LineWrite | None = None) -> PsaLine | None:
        """The line trueup wrote for `key` on that agreement, if the PSA has it. `expect` is the line as
        it was (or would be) written: a connector whose key field is not proven to round-trip falls
        back on it for a second, independent match (HaloPSA, Autotask: see each module); the executor
        passes it from the journaled line, so the match also works after a crash."""
        ...

    async def create_line(self, write: LineWrite) -> PsaLine: ...

    async def update_line(self, update: LineUpdate) -> PsaLine: ...

    async def create_company(self, name: str) -> PsaCompany: ...

    def create_requests(self, write: LineWrite) -> list[httpx.Request]:
        """The exact requests `create_line` would send (for `trueup sync --dry-run`)."""
        ...

    def update_requests(self, update: LineUpdate) -> list[httpx.Request]: ...

    async def aclose(self) -> None: ...


def refuse_bill_options(
    service: str, psa: PsaName, key: str, taxable: bool | None, bill_option: BillOption | None
) -> None:
    """Raise (nothing sent) when a PSA whose lines carry no taxable flag or bill option is asked for
    one: the bind refuses them for such a workspace (engine.actions.bind_product), so only a scenario
    or store bound elsewhere gets here."""
    from engine.psa import Capability, psa_spec

    spec = psa_spec(psa)
    if spec.can(Capability.LINE_BILL_OPTIONS) or (taxable is None and bill_option in (None, "billable")):
        return
    raise ServiceError(service, f"{key}: {spec.bill_options_note}", sent=False)


# --- extra-months lines (RULES.md §3) --------------------------------------------------------------
# A PSA addition / invoice line / contract charge has no "number of months" field, so an extra-months
# line is written as ONE one-time line with quantity = gap × months at the full unit price (the PSA
# then invoices gap × price × months once, the plan's total), and its description says so. Seed 001
# shows quantity = gap and "Number Of Months" separately; the product (and any reader) gets the same
# figure either way, and one line per run keeps the line key one-to-one with the PSA line.


def psa_quantity(write: LineWrite) -> Decimal:
    """The quantity the PSA line carries: gap × months for an extra-months line, else the quantity."""
    if write.months:
        return write.quantity * write.months
    return write.quantity


def psa_description(write: LineWrite) -> str:
    """The description, with `- 1 seat × 2 months (02/2021–03/2021)` for an extra-months line."""
    if not write.months:
        return write.description
    gap = format(write.quantity.normalize(), "f")
    seats = "seat" if write.quantity == 1 else "seats"
    months = "month" if write.months == 1 else "months"
    note = f" - {gap} {seats} × {write.months} {months}"
    if write.period_start is not None and write.period_end is not None:
        note += f" ({write.period_start:%m/%Y}–{write.period_end:%m/%Y})"
    return write.description + note
