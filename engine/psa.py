"""The PSA registry: one place answers "what is this PSA and what can it do".

Every module that needs a PSA's name for the operator, its sign-in fields, where its lines carry
trueup's key, its field limits or what its connector can do reads `PSAS` / `psa_spec` instead of
testing the name (`psa == "halopsa"`) or probing the connector (`getattr(psa, "remember_keys")`).
The facts are the connectors' (each cites its source there); this table only gathers them, and
tests/engine/test_psa_registry.py holds it equal to the connector classes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, Protocol, get_args

PsaName = Literal["connectwise", "halopsa", "autotask"]


class Capability(StrEnum):
    """What a PSA connector does beyond the `PsaConnector` protocol."""

    # Keys too long for the key field are stored as a digest: the connector must be told the synced
    # keys (`remember_keys`) to read them back (ConnectWise's and HaloPSA's `KeyCodec`).
    DIGEST_KEYS = "digest_keys"
    # The connector reads what the PSA actually invoiced for a range of days (`invoiced_lines`,
    # engine.margin.psa_invoices; engine.margin.store.PsaInvoicedSource); without it the margin
    # check uses the lines in force and says so.
    INVOICED_LINES = "invoiced_lines"
    # A line carries its own taxable flag and bill option (issue 13, seed 001 "Bill Options:
    # Billable / Taxable"): a binding's are written on every line it produces (ConnectWise
    # `Addition.taxableFlag` / `billCustomer`, APIS.md §2.8).
    LINE_BILL_OPTIONS = "line_bill_options"


class DigestsKeys(Protocol):
    """A connector with `Capability.DIGEST_KEYS`."""

    def remember_keys(self, keys: Iterable[str]) -> None: ...


@dataclass(frozen=True, slots=True)
class PsaLimits:
    description: int  # the short description field (RULES.md §1: a longer description is cut)
    key: int  # the field that carries trueup's plan key


@dataclass(frozen=True, slots=True)
class PsaSpec:
    name: PsaName
    display_name: str  # in titles and the console ("ConnectWise")
    product_name: str  # in sentences about the service ("ConnectWise Manage")
    auth_fields: tuple[str, ...]  # the `[psa.<name>]` settings that sign in (no secret among them)
    secret: str  # what the secret is called there (from the environment or the keyring)
    secret_env: str
    key_field: str  # where a line written by trueup carries its plan key
    limits: PsaLimits
    capabilities: frozenset[Capability]
    # Without Capability.LINE_BILL_OPTIONS: the one sentence a bind with a non-default taxable flag
    # or bill option is refused with (engine.actions.bind_product), naming what the PSA lacks.
    bill_options_note: str = ""

    def can(self, capability: Capability) -> bool:
        return capability in self.capabilities


PSAS: dict[PsaName, PsaSpec] = {
    "connectwise": PsaSpec(
        name="connectwise",
        display_name="ConnectWise",
        product_name="ConnectWise Manage",
        auth_fields=("site", "company_id", "public_key", "client_id"),
        secret="private key",
        secret_env="TRUEUP_CONNECTWISE_PRIVATE_KEY",
        # [spec] Addition.serialNumber "Max length: 50;" (engine/connectors/connectwise.py)
        key_field="agreement addition serialNumber",
        # ASSUMED: the spec gives Addition.description no length; 50 keeps it safe (connectwise.py)
        limits=PsaLimits(description=50, key=50),
        capabilities=frozenset(
            {Capability.DIGEST_KEYS, Capability.INVOICED_LINES, Capability.LINE_BILL_OPTIONS}
        ),
    ),
    "halopsa": PsaSpec(
        name="halopsa",
        display_name="HaloPSA",
        product_name="HaloPSA",
        auth_fields=("base_url", "client_id", "tenant"),
        secret="client secret",
        secret_env="TRUEUP_HALOPSA_CLIENT_SECRET",
        # ASSUMED: the spec gives InvoiceDetail.comment_1 no length (engine/connectors/halopsa.py)
        key_field="recurring invoice line comment_1",
        limits=PsaLimits(description=255, key=100),
        capabilities=frozenset({Capability.DIGEST_KEYS, Capability.INVOICED_LINES}),
        # [spec] halo-api-v2 InvoiceDetail has no taxable flag (only a tenant's tax code:
        # `tax_code`, `override_tax_code`, `tax_code_overriden`) and no billable / no-charge field.
        bill_options_note="HaloPSA recurring invoice lines have no taxable flag (only the tenant's tax "
        "codes) and no bill option, so a binding there stays billable with the item's tax default.",
    ),
    "autotask": PsaSpec(
        name="autotask",
        display_name="Autotask",
        product_name="Autotask",
        auth_fields=("username", "integration_code", "zone_url"),
        secret="API user secret",
        secret_env="TRUEUP_AUTOTASK_SECRET",
        # [ecit] ContractServices.internalDescription 100, ContractCharges.internalPurchaseOrderNumber
        # 50 (engine/connectors/autotask_entities.py); the charge's is the shorter.
        key_field="contract service internalDescription / contract charge internalPurchaseOrderNumber",
        limits=PsaLimits(description=200, key=50),
        capabilities=frozenset({Capability.INVOICED_LINES}),
        # APIS.md §4.7: ContractServices have no per-line taxable flag or bill option (tax follows
        # the company's tax region and the service's billing code).
        bill_options_note="Autotask contract services have no per-line taxable flag or bill option, "
        "so a binding there stays billable with the service's tax default.",
    ),
}
PSA_NAMES: tuple[PsaName, ...] = get_args(PsaName)
_BY_NAME: dict[str, PsaSpec] = {
    name: spec for name, spec in PSAS.items()
}  # looked up by any text (a setting, a connector's name)


def psa_spec(name: str) -> PsaSpec:
    """The registry's entry for `name`; a ValueError naming the known PSAs otherwise."""
    spec = _BY_NAME.get(name)
    if spec is None:
        raise ValueError(f"unknown PSA {name!r} (one of {', '.join(PSA_NAMES)})")
    return spec


def display_name(name: str, default: str = "PSA") -> str:
    """The PSA's name for the operator; `default` for a name that is no PSA."""
    spec = _BY_NAME.get(name)
    return spec.display_name if spec is not None else default
