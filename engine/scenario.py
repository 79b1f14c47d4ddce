"""The scenario: a frozen picture of one partner's world (see shared/contract/SCENARIO.md).

What the vendor says, what the PSA holds, the mappings between them, and what was synced, ignored
or overridden before. `trueup plan` reads it from a file; `trueup export-scenario` writes it from
the store; the reconciliation reads the same type from either. Unknown keys are an error.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Sequence
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from engine.months import last_of_month

Id = Annotated[str, Field(min_length=1)]
ProductKind = Literal["seat", "endpoint_usage", "usage_summary", "quota"]
PsaName = Literal["connectwise", "halopsa", "autotask"]

_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def _check_month(value: str) -> str:
    if not _MONTH.match(value):
        raise ValueError("not a month (expected YYYY-MM)")
    return value


Month = Annotated[str, AfterValidator(_check_month)]


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


class Settings(Model):
    invoiced_through: date | None = Field(
        None, description="Last day already invoiced to customers; null = last day of as_of's month."
    )
    threshold_prorates: bool = Field(True, description="Prorate only seats above the month's high-water mark.")
    prorate_counts_change_day: bool = Field(False, description="Count the change day itself in the factor.")
    psa: PsaName = "connectwise"
    description_prefix: str = Field("Pax8", description="Prefix of generated line descriptions.")

    def invoiced_through_on(self, as_of: date) -> date:
        """The last day already invoiced: the setting, else the last day of as_of's month."""
        return self.invoiced_through or last_of_month(as_of)


# --- vendor side ---------------------------------------------------------------------------------


class VendorCompany(Model):
    id: Id
    name: str
    status: Literal["active", "inactive"] = "active"


class VendorProduct(Model):
    id: Id
    sku: str | None = None
    name: str
    kind: ProductKind = "seat"
    sub_products: list[str] = Field(default_factory=list, description="endpoint_usage only: Business, Pro…")
    edition: str | None = Field(
        None, description="Quota products: the vendor edition (per workload / per gigabyte). "
        "Null: taken from a `pw-`/`pg-` SKU prefix."
    )
    service: Literal["licence", "backup_storage", "disaster_recovery", "geo_redundancy"] | None = Field(
        None, description="Quota/backup products: what the offering item is."
    )
    storage_location: str | None = Field(None, description="Backup storage / disaster recovery location.")
    parent_product_id: str | None = Field(None, description="Geo-redundancy items: the storage item they copy.")


class HistoryRow(Model):
    id: Id
    action: Literal["initial", "increase", "decrease", "cancel"]
    quantity: Decimal = Field(description="The quantity after the change.")
    effective_date: date


class Subscription(Model):
    id: Id
    company_id: Id
    product_id: Id
    billing_term: Literal["monthly", "annual"] = "monthly"
    start_date: date
    end_date: date | None = None
    unit_price: Decimal
    unit_cost: Decimal
    status: Literal["active", "cancelled"] = "active"
    cancelled_date: date | None = None
    history: list[HistoryRow] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_history(self) -> Subscription:
        _no_duplicates(self.history, "history", lambda h: h.id, "id")
        return self


class UsageRow(Model):
    subscription_id: Id
    sub_product: str | None = None
    period: Month
    quantity: Decimal
    unit_price: Decimal = Decimal("0")
    unit_cost: Decimal = Decimal("0")
    snapshot_date: date | None = None
    charges: Decimal | None = Field(None, description="Usage summaries: the period's customer charges.")
    partner_total: Decimal | None = Field(None, description="Usage summaries: the period's partner total.")


class BillingConfiguration(Model):
    """A backup-statistics billing configuration (seed 002): several products billed as one line."""

    id: Id
    company_id: Id
    name: str
    mode: Literal["average", "total", "quantity_only"]
    subscription_ids: list[Id] = Field(min_length=1)
    psa_product_id: str | None = Field(None, description="Null: the binding of the first subscription's product.")


class Vendor(Model):
    companies: list[VendorCompany] = Field(default_factory=list)
    products: list[VendorProduct] = Field(default_factory=list)
    subscriptions: list[Subscription] = Field(default_factory=list)
    usage: list[UsageRow] = Field(default_factory=list)
    billing_configurations: list[BillingConfiguration] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> Vendor:
        _no_duplicates(self.companies, "companies", lambda c: c.id, "id")
        _no_duplicates(self.products, "products", lambda p: p.id, "id")
        _no_duplicates(self.subscriptions, "subscriptions", lambda s: s.id, "id")
        _no_duplicates([h for s in self.subscriptions for h in s.history], "history rows", lambda h: h.id,
                       "id, across subscriptions")
        _no_duplicates(self.usage, "usage", lambda u: (u.subscription_id, u.sub_product, u.period),
                       "subscription_id, sub_product and period")
        _no_duplicates(self.billing_configurations, "billing_configurations", lambda c: c.id, "id")
        return self


# --- PSA side ------------------------------------------------------------------------------------


class PsaCompany(Model):
    id: Id
    name: str


class PsaProduct(Model):
    id: Id
    name: str
    sku: str | None = None
    unit_price: Decimal | None = Field(None, description="Catalogue price (quantity-only lines use it).")
    unit_cost: Decimal | None = None


class PsaAgreement(Model):
    id: Id
    company_id: Id
    name: str
    start_date: date
    end_date: date | None = None
    billing_period: Literal["monthly", "annual"] = "monthly"


class LineSource(Model):
    subscription_id: str | None = None
    sub_product: str | None = None
    key: str | None = None


class PsaLine(Model):
    id: Id
    agreement_id: Id
    product_id: Id
    kind: Literal["recurring", "one_time"] = "recurring"
    quantity: Decimal
    unit_price: Decimal
    unit_cost: Decimal
    effective_date: date
    cancelled_date: date | None = None
    description: str = ""
    metered: bool = False
    source: LineSource | None = None


class Psa(Model):
    companies: list[PsaCompany] = Field(default_factory=list)
    products: list[PsaProduct] = Field(default_factory=list)
    agreements: list[PsaAgreement] = Field(default_factory=list)
    lines: list[PsaLine] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> Psa:
        for name, items in (("companies", self.companies), ("products", self.products),
                            ("agreements", self.agreements), ("lines", self.lines)):
            _no_duplicates(items, name, lambda x: x.id, "id")
        return self


# --- what binds the two, and what the operator did -----------------------------------------------


class CompanyMapping(Model):
    vendor_id: Id
    psa_id: Id


class ProductBinding(Model):
    vendor_product_id: Id
    sub_product: str | None = None
    psa_product_id: Id
    free: bool = False
    unit_price: Decimal | None = Field(None, description="Overrides the vendor's retail price.")
    unit_cost: Decimal | None = Field(None, description="Overrides the vendor's partner cost.")


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
        _no_duplicates(self.products, "products", lambda b: (b.vendor_product_id, b.sub_product),
                       "vendor_product_id and sub_product")
        _no_duplicates(self.agreements, "agreements", lambda m: m.vendor_company_id, "vendor_company_id")
        return self


class SyncedKey(Model):
    key: Id
    quantity: Decimal | None = None
    synced_on: date
    psa_line_id: str | None = None


class Ignore(Model):
    key: Id = Field(description="A plan line's key, or a subscription id (every line of it).")
    mode: Literal["until_restored", "this_change"] = "until_restored"
    by: str
    on: date
    reason: str | None = None
    fingerprint: str | None = Field(None, description="this_change: the line as it was when ignored.")


class Override(Model):
    key: Id = Field(description="The plan line's key.")
    effective_date: date | None = None
    create_new: bool = Field(False, description="Recurring lines: create a new line, cancel the old one.")


class Scenario(Model):
    as_of: date
    settings: Settings = Field(default_factory=Settings)
    vendor: Vendor = Field(default_factory=Vendor)
    psa: Psa = Field(default_factory=Psa)
    mappings: Mappings = Field(default_factory=Mappings)
    synced: list[SyncedKey] = Field(default_factory=list)
    ignored: list[Ignore] = Field(default_factory=list)
    overrides: list[Override] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> Scenario:
        for name, items in (("synced", self.synced), ("ignored", self.ignored), ("overrides", self.overrides)):
            _no_duplicates(items, name, lambda x: x.key, "key")
        return self
