"""The store's tables (persistence only; the engine reasons over `engine.scenario` types)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, LargeBinary, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from engine.store.saved_state import PLAN_CACHE, REVISION_TABLE
from engine.store.types import DecimalText


def money(nullable: bool = False) -> Any:  # what Field() returns: a FieldInfo typed as the column's value
    return Field(default=None if nullable else Decimal(0), sa_column=Column(DecimalText(), nullable=nullable))


def plan_key() -> Any:  # what Field() returns: a FieldInfo typed as the column's value
    """A primary key holding plan keys (or bare subject ids), read by range (`<id>:` ≤ key < `<id>;`):
    compared byte by byte on PostgreSQL too ("C"), whatever the database's default collation
    (migration 0010_plan_keys_bytewise says why)."""
    return Field(
        sa_column=Column(String().with_variant(String(collation="C"), "postgresql"), primary_key=True)
    )


PLAN_KEY_TABLES = ("synced_key", "ignore", "override")  # the tables keyed by `plan_key()`


# --- vendor --------------------------------------------------------------------------------------


class VendorCompanyRow(SQLModel, table=True):
    __tablename__ = "vendor_company"
    id: str = Field(primary_key=True)
    name: str
    status: str = "active"


class VendorProductRow(SQLModel, table=True):
    __tablename__ = "vendor_product"
    id: str = Field(primary_key=True)
    sku: str | None = None
    name: str
    kind: str = "seat"
    sub_products: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    edition: str | None = None
    service: str | None = None
    storage_location: str | None = None
    parent_product_id: str | None = None


class SubscriptionRow(SQLModel, table=True):
    __tablename__ = "subscription"
    id: str = Field(primary_key=True)
    company_id: str = Field(index=True)
    product_id: str = Field(index=True)
    billing_term: str = "monthly"
    start_date: date
    end_date: date | None = None
    unit_price: Decimal = money()
    unit_cost: Decimal = money()
    status: str = "active"
    cancelled_date: date | None = None
    gone: bool = False  # no longer listed by the vendor (migration 0009_subscription_gone)


class HistoryRowRecord(SQLModel, table=True):
    __tablename__ = "subscription_history"
    __table_args__ = (Index("ix_history_subscription_seq", "subscription_id", "seq"),)
    id: str = Field(primary_key=True)
    subscription_id: str
    seq: int
    action: str
    quantity: Decimal = money()
    effective_date: date


class UsageRecord(SQLModel, table=True):
    __tablename__ = "usage"
    __table_args__ = (UniqueConstraint("subscription_id", "sub_product", "period", name="uq_usage_period"),)
    id: int | None = Field(default=None, primary_key=True)
    subscription_id: str = Field(index=True)
    sub_product: str = ""  # "" = none (a NULL would defeat the unique constraint)
    period: str
    quantity: Decimal = money()
    unit_price: Decimal = money()
    unit_cost: Decimal = money()
    snapshot_date: date | None = None
    charges: Decimal | None = money(nullable=True)
    partner_total: Decimal | None = money(nullable=True)


class BillingConfigurationRow(SQLModel, table=True):
    __tablename__ = "billing_configuration"
    id: str = Field(primary_key=True)
    company_id: str
    name: str
    mode: str
    subscription_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    psa_product_id: str | None = None


# --- PSA -----------------------------------------------------------------------------------------


class PsaCompanyRow(SQLModel, table=True):
    __tablename__ = "psa_company"
    id: str = Field(primary_key=True)
    name: str


class PsaProductRow(SQLModel, table=True):
    __tablename__ = "psa_product"
    id: str = Field(primary_key=True)
    name: str
    sku: str | None = None
    unit_price: Decimal | None = money(nullable=True)
    unit_cost: Decimal | None = money(nullable=True)


class PsaAgreementRow(SQLModel, table=True):
    __tablename__ = "psa_agreement"
    id: str = Field(primary_key=True)
    company_id: str = Field(index=True)
    name: str
    start_date: date
    end_date: date | None = None
    billing_period: str = "monthly"


class PsaLineRow(SQLModel, table=True):
    __tablename__ = "psa_line"
    id: str = Field(primary_key=True)
    agreement_id: str = Field(index=True)
    product_id: str
    kind: str = "recurring"
    quantity: Decimal = money()
    unit_price: Decimal = money()
    unit_cost: Decimal = money()
    effective_date: date
    cancelled_date: date | None = None
    description: str = ""
    metered: bool = False
    has_source: bool = False
    source_subscription_id: str | None = Field(default=None, index=True)
    source_sub_product: str | None = None
    source_key: str | None = Field(default=None, index=True)
    # issue 13, migration 0008_binding_bill_options: how the PSA bills the line, when read (None: not)
    taxable: bool | None = None
    bill_option: str | None = None  # engine.scenario.BillOption


# --- mappings and operator state -----------------------------------------------------------------


class CompanyMappingRow(SQLModel, table=True):
    __tablename__ = "company_mapping"
    vendor_id: str = Field(primary_key=True)
    psa_id: str = Field(primary_key=True)
    version: int = 1


class ProductBindingRow(SQLModel, table=True):
    __tablename__ = "product_binding"
    vendor_product_id: str = Field(primary_key=True)
    sub_product: str = Field(default="", primary_key=True)  # "" = the top-level product
    psa_product_id: str
    free: bool = False
    # issue 13, migration 0008_binding_bill_options: written on every line the binding produces
    taxable: bool | None = None  # None = the PSA product's default
    bill_option: str = Field(default="billable", sa_column_kwargs={"server_default": "billable"})
    unit_price: Decimal | None = money(nullable=True)
    unit_cost: Decimal | None = money(nullable=True)
    version: int = 1


class AgreementMappingRow(SQLModel, table=True):
    __tablename__ = "agreement_mapping"
    vendor_company_id: str = Field(primary_key=True)
    psa_agreement_id: str
    version: int = 1


class SyncedKeyRow(SQLModel, table=True):
    __tablename__ = "synced_key"
    key: str = plan_key()
    quantity: Decimal | None = money(nullable=True)
    synced_on: date
    psa_line_id: str | None = None


class IgnoreRow(SQLModel, table=True):
    __tablename__ = "ignore"
    key: str = plan_key()
    mode: str = "until_restored"
    by: str
    on: date
    reason: str | None = None
    fingerprint: str | None = None
    version: int = 1


class OverrideRow(SQLModel, table=True):
    __tablename__ = "override"
    key: str = plan_key()
    effective_date: date | None = None
    create_new: bool = False
    version: int = 1


class SettingRow(SQLModel, table=True):
    """Scenario-wide settings (invoiced_through, thresholds…) and the store's own facts."""

    __tablename__ = "setting"
    name: str = Field(primary_key=True)
    value: dict[str, Any] | str | None = Field(default=None, sa_column=Column(JSON, nullable=True))


class AuditEvent(SQLModel, table=True):
    """Append-only: every operator action and every PSA write."""

    __tablename__ = "audit_event"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(index=True)
    user: str
    host: str
    action: str = Field(index=True)
    subject: str = Field(index=True)
    company: str | None = Field(default=None, index=True)
    before: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    after: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))


# --- the store's revision and the last computed state (engine.store.plan_cache) ------------------


class StoreRevisionRow(SQLModel, table=True):
    """One row (id 1): its revision goes up in the same transaction as every committed write to a
    table the plan is computed from (a hook on the store's engine, `engine.store.plan_cache`)."""

    __tablename__ = REVISION_TABLE
    id: int = Field(default=1, primary_key=True)
    revision: int = 0


class PlanCacheRow(SQLModel, table=True):
    """The last computed state (the console's rows and the plan, zlib-compressed JSON, never pickle)
    with the store revision, the requested as-of and the day it was computed for."""

    __tablename__ = PLAN_CACHE  # named once, for the bare reader too (engine.store.saved_state)
    name: str = Field(primary_key=True)
    revision: int
    as_of: date | None = None  # the as-of asked for (None: the store's own as-of setting)
    today: date
    code: str  # the code that computed it (a hash of the engine's sources)
    computed_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    view: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    plan: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


# --- commitment terms (issue 15, migration 0006_commitment_terms) --------------------------------


class CommitmentTermRow(SQLModel, table=True):
    """A subscription's commitment term and its product's commitment rules (engine.scenario.Commitment)."""

    __tablename__ = "commitment_term"
    subscription_id: str = Field(primary_key=True)
    term: str
    end_date: date | None = None
    auto_renew: bool = True
    window_days_before: int = 0
    window_days_after: int = 7
    allow_decrease: bool = False
    allow_early_cancellation: bool = False
    cancellation_fee: bool = False


class SeatAdditionRow(SQLModel, table=True):
    """When seats were added to a committed subscription (the 168-hour rule): instants in UTC."""

    __tablename__ = "seat_addition"
    subscription_id: str = Field(primary_key=True)
    seq: int = Field(primary_key=True)
    at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    quantity: Decimal = money()


# --- the distributor's invoices and the margin check's operator marks (issue 14, engine.margin) ---


class DistributorInvoiceRow(SQLModel, table=True):
    """A distributor invoice as read (engine.margin.invoices.DistributorInvoice)."""

    __tablename__ = "distributor_invoice"
    id: str = Field(primary_key=True)
    month: str = Field(index=True)  # YYYY-MM of invoice_date
    invoice_date: date
    status: str
    total: Decimal = money()
    currency: str
    read_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class DistributorInvoiceItemRow(SQLModel, table=True):
    __tablename__ = "distributor_invoice_item"
    __table_args__ = (Index("ix_invoice_item_invoice_seq", "invoice_id", "seq"),)
    id: str = Field(primary_key=True)
    invoice_id: str
    seq: int
    type: str
    term: str | None = None
    company_id: str | None = None
    subscription_id: str | None = Field(default=None, index=True)
    product_id: str | None = None
    product_name: str = ""
    start_period: date | None = None
    end_period: date | None = None
    quantity: Decimal = money()
    price: Decimal = money()
    cost: Decimal = money()
    cost_total: Decimal = money()
    sub_total: Decimal = money()
    currency: str


class MarginMarkRow(SQLModel, table=True):
    """An operator's mark on a subscription for the margin check (`internal_use`): who, when, why."""

    __tablename__ = "margin_mark"
    subscription_id: str = Field(primary_key=True)
    mark: str = "internal_use"
    by: str
    on: date
    reason: str | None = None


class PsaInvoiceLineRow(SQLModel, table=True):
    """A line of an invoice the PSA issued (engine.margin.psa_invoices.PsaInvoiceLine), per PSA."""

    __tablename__ = "psa_invoice_line"
    __table_args__ = (Index("ix_psa_invoice_line_psa_month", "psa", "month"),)
    psa: str = Field(primary_key=True)
    invoice_id: str = Field(primary_key=True)
    seq: int = Field(primary_key=True)
    month: str  # YYYY-MM of invoice_date
    invoice_number: str
    invoice_date: date
    company_id: str
    agreement_id: str | None = None
    line_id: str | None = None
    product_id: str | None = None
    description: str = ""
    quantity: Decimal = money()
    unit_price: Decimal = money()
    amount: Decimal = money()
    currency: str
    read_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
