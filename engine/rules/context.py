"""The world a reconciliation runs over: the scenario indexed for lookups, the billing dates, the
mapping resolution (company → PSA company → agreement, product → binding) and the findings raised."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from engine.batch import fast
from engine.keys import subject_of
from engine.money import round_cents
from engine.months import last_of_month, next_day
from engine.plan import Finding, PlanLine
from engine.psa import Capability, psa_spec
from engine.rules.findings import finding
from engine.rules.hints import PlanHints
from engine.scenario import (
    BILL_OPTION_LABELS,
    Ignore,
    Override,
    ProductBinding,
    PsaAgreement,
    PsaLine,
    Scenario,
    Subscription,
    UsageRow,
    VendorCompany,
    VendorProduct,
)


@dataclass(frozen=True, slots=True)
class Target:
    """Where a vendor company's lines go."""

    company: VendorCompany
    psa_company_id: str
    agreement: PsaAgreement


def _numeric_order(value: str) -> tuple[int, int | str]:
    return (0, int(value)) if value.isdigit() else (1, value)


class World:
    def __init__(self, scenario: Scenario, hints: PlanHints | None = None):
        self.scenario = scenario
        self.hints = hints or PlanHints()
        self.as_of = scenario.as_of
        settings = scenario.settings
        self.settings = settings
        self.invoiced_through = settings.invoiced_through_on(scenario.as_of)
        self.first_unbilled = next_day(self.invoiced_through)  # E
        self.month_end = last_of_month(scenario.as_of)
        # how much of a description the PSA keeps in its short description field (RULES.md §1)
        self.description_limit = psa_spec(settings.psa).limits.description
        # issue 13: only a PSA whose lines carry a bill option and taxable flag is compared on them
        self.line_bill_options = psa_spec(settings.psa).can(Capability.LINE_BILL_OPTIONS)

        vendor, psa, mappings = scenario.vendor, scenario.psa, scenario.mappings
        self.companies: dict[str, VendorCompany] = {c.id: c for c in vendor.companies}
        self.products: dict[str, VendorProduct] = {p.id: p for p in vendor.products}
        self.subscriptions: dict[str, Subscription] = {s.id: s for s in vendor.subscriptions}
        self.usage: dict[str, list[UsageRow]] = defaultdict(list)
        for row in vendor.usage:
            self.usage[row.subscription_id].append(row)
        self.psa_companies = {c.id: c for c in psa.companies}
        self.psa_products = {p.id: p for p in psa.products}
        self.agreements = {a.id: a for a in psa.agreements}
        self.agreements_by_company: dict[str, list[PsaAgreement]] = defaultdict(list)
        for agreement in psa.agreements:
            self.agreements_by_company[agreement.company_id].append(agreement)
        self.lines_by_agreement: dict[str, list[PsaLine]] = defaultdict(list)
        self.line_keys: set[str] = set()
        self.psa_lines = psa.lines
        self._duplicates: dict[str, dict[str, tuple[str, ...]]] | None = None
        for line in psa.lines:
            self.lines_by_agreement[line.agreement_id].append(line)
            if line.source is not None and line.source.key:
                self.line_keys.add(line.source.key)
        self.company_map: dict[str, list[str]] = defaultdict(list)
        self.reverse_company_map: dict[str, list[str]] = defaultdict(list)
        for m in mappings.companies:
            self.company_map[m.vendor_id].append(m.psa_id)
            self.reverse_company_map[m.psa_id].append(m.vendor_id)
        self.bindings: dict[tuple[str, str | None], ProductBinding] = {
            (b.vendor_product_id, b.sub_product): b for b in mappings.products
        }
        self.agreement_map = {m.vendor_company_id: m.psa_agreement_id for m in mappings.agreements}
        self.synced_keys: set[str] = {s.key for s in scenario.synced}
        if self.hints.synced_keys is not None:  # read only here: not copied when the scenario has none
            self.synced_keys = (
                self.synced_keys | self.hints.synced_keys if self.synced_keys else self.hints.synced_keys
            )
        self.ignored: dict[str, Ignore] = {i.key: i for i in scenario.ignored}
        self.overrides: dict[str, Override] = {o.key: o for o in scenario.overrides}
        self.claimed_lines: set[str] = set()
        self._agreement_choices: dict[
            tuple[str, str, str], tuple[PsaAgreement | None, tuple[str, str] | None, int]
        ] = {}
        self._lines_by_product: dict[tuple[str, str], list[PsaLine]] = defaultdict(list)
        for line in psa.lines:
            self._lines_by_product[(line.agreement_id, line.product_id)].append(line)
        self._findings: dict[tuple[str, str], Finding] = {}
        self._psa_company_cache: dict[str, str | None] = {}
        self._active_lines: dict[tuple[str, str], list[PsaLine]] = {}

    # --- findings --------------------------------------------------------------------------------

    def raise_finding(self, code: str, subject: dict[str, str], message: str) -> None:
        key = (code, json.dumps(subject, sort_keys=True))
        if key not in self._findings:
            self._findings[key] = finding(code, subject, message)

    @property
    def findings(self) -> list[Finding]:
        return list(self._findings.values())

    # --- sync state ------------------------------------------------------------------------------

    def duplicate_lines(self, subscription_id: str) -> dict[str, tuple[str, ...]]:
        """Keys of this subscription that more than one PSA line carries for the same billing
        (engine.verify.duplicate_keys): key → PSA line ids."""
        if self._duplicates is None:
            from engine.verify import duplicate_keys

            found: dict[str, dict[str, tuple[str, ...]]] = defaultdict(dict)
            keyed = [line for line in self.psa_lines if line.source is not None and line.source.key]
            by_line = {line.id: line for line in keyed}
            for key, ids in duplicate_keys(keyed).items():
                source = by_line[ids[0]].source
                sub = (source.subscription_id if source is not None else None) or subject_of(key)
                found[sub][key] = ids
            self._duplicates = dict(found)
        return self._duplicates.get(subscription_id, {})

    def is_synced(self, key: str) -> bool:
        return key in self.synced_keys or key in self.line_keys

    # --- mapping resolution ----------------------------------------------------------------------

    def psa_company_for(self, vendor_company_id: str) -> str | None:
        """The one PSA company a vendor company maps to; raises the mapping findings otherwise.
        Asked once per subscription: the answer is kept per company (a repeated call would only
        raise the same findings again, which `raise_finding` keeps once anyway)."""
        try:
            return self._psa_company_cache[vendor_company_id]
        except KeyError:
            psa_id = self._psa_company_cache[vendor_company_id] = self._psa_company_for(vendor_company_id)
            return psa_id

    def _psa_company_for(self, vendor_company_id: str) -> str | None:
        company = self.companies.get(vendor_company_id)
        name = company.name if company else vendor_company_id
        targets = self.company_map.get(vendor_company_id, [])
        if not targets:
            self.raise_finding(
                "company_not_mapped",
                {"vendor_company_id": vendor_company_id},
                f"{name} is not mapped to a PSA company.",
            )
            return None
        if len(set(targets)) > 1:
            names = ", ".join(self._psa_company_name(t) for t in sorted(set(targets)))
            self.raise_finding(
                "duplicate_mapping",
                {"vendor_company_id": vendor_company_id},
                f"{name} is mapped to {len(set(targets))} PSA companies ({names}); it may map to one only.",
            )
            return None
        psa_id = targets[0]
        others = sorted(set(self.reverse_company_map.get(psa_id, [])) - {vendor_company_id})
        if others:
            self.raise_finding(
                "duplicate_mapping",
                {"psa_company_id": psa_id},
                f"PSA company {self._psa_company_name(psa_id)} is the target of {len(others) + 1} vendor "
                "companies; a PSA company may be mapped once only.",
            )
            return None
        return psa_id

    def _psa_company_name(self, psa_id: str) -> str:
        company = self.psa_companies.get(psa_id)
        return f"{company.name} ({psa_id})" if company else psa_id

    def agreement_for(
        self, vendor_company_id: str, psa_company_id: str, term: str, subject: dict[str, str]
    ) -> PsaAgreement | None:
        """The agreement a subscription's lines go to (RULES.md §8): an explicit agreement mapping,
        else the PSA company's agreements active on E whose billing period matches the term; the
        newest when several (with a warning)."""
        cache_key = (vendor_company_id, psa_company_id, term)
        choice = self._agreement_choices.get(cache_key)
        if choice is None:
            choice = self._agreement_choices[cache_key] = self._choose_agreement(*cache_key)
        agreement, failure, several = choice
        if failure is not None:
            code, reason = failure
            self.raise_finding(code, subject, f"{self._subject_label(subject)}: {reason}")
            return None
        if several and agreement is not None:
            name = (
                self.companies[vendor_company_id].name
                if vendor_company_id in self.companies
                else vendor_company_id
            )
            self.raise_finding(
                "multiple_active_agreements",
                {"vendor_company_id": vendor_company_id, "psa_agreement_id": agreement.id},
                f"{name} has {several} active {term} agreements; using the newest, '{agreement.name}'.",
            )
        return agreement

    def _choose_agreement(
        self, vendor_company_id: str, psa_company_id: str, term: str
    ) -> tuple[PsaAgreement | None, tuple[str, str] | None, int]:
        """(agreement, (finding code, reason) when there is none, how many were candidates)."""
        explicit = self.agreement_map.get(vendor_company_id)
        if explicit is not None:
            agreement = self.agreements.get(explicit)
            if agreement is None:
                return (
                    None,
                    ("no_active_agreement", f"the mapped agreement {explicit} does not exist in the PSA."),
                    0,
                )
            if agreement.billing_period != term:
                return (
                    None,
                    (
                        "billing_period_mismatch",
                        f"{term} subscription, but the mapped agreement "
                        f"'{agreement.name}' bills {agreement.billing_period}.",
                    ),
                    0,
                )
            return agreement, None, 0
        e = self.first_unbilled
        active = [
            a
            for a in self.agreements_by_company.get(psa_company_id, [])
            if a.start_date <= e and (a.end_date is None or a.end_date >= e)
        ]
        if not active:
            company = self._psa_company_name(psa_company_id)
            return None, ("no_active_agreement", f"{company} has no agreement active on {e.isoformat()}."), 0
        matching = [a for a in active if a.billing_period == term]
        if not matching:
            periods = ", ".join(sorted({f"'{a.name}' ({a.billing_period})" for a in active}))
            return (
                None,
                (
                    "billing_period_mismatch",
                    f"{term} subscription, but the active agreements bill otherwise: {periods}.",
                ),
                0,
            )
        newest = max(matching, key=lambda a: (a.start_date, _numeric_order(a.id)))
        return newest, None, len(matching) if len(matching) > 1 else 0

    def target_for(self, vendor_company_id: str, term: str, subject: dict[str, str]) -> Target | None:
        company = self.companies.get(vendor_company_id)
        if company is None:
            company = VendorCompany(id=vendor_company_id, name=vendor_company_id)
        psa_company_id = self.psa_company_for(vendor_company_id)
        if psa_company_id is None:
            return None
        agreement = self.agreement_for(vendor_company_id, psa_company_id, term, subject)
        if agreement is None:
            return None
        return Target(company, psa_company_id, agreement)

    def binding_for(
        self, subscription: Subscription, sub_product: str | None = None
    ) -> ProductBinding | None:
        binding = self.bindings.get((subscription.product_id, sub_product))
        if binding is None and sub_product is not None:
            binding = self.bindings.get((subscription.product_id, None))
        if binding is None:
            product = self.products.get(subscription.product_id)
            name = product.name if product else subscription.product_id
            what = f"{name} {sub_product}" if sub_product else name
            self.raise_finding(
                "product_not_bound",
                {"subscription_id": subscription.id},
                f"{what} is not bound to a PSA product.",
            )
        return binding

    def _subject_label(self, subject: dict[str, str]) -> str:
        sub_id = subject.get("subscription_id")
        if sub_id and sub_id in self.subscriptions:
            sub = self.subscriptions[sub_id]
            product = self.products.get(sub.product_id)
            company = self.companies.get(sub.company_id)
            return f"{company.name if company else sub.company_id} / {product.name if product else sub.product_id}"
        return ", ".join(subject.values())

    # --- PSA lines -------------------------------------------------------------------------------

    def active_lines(self, agreement_id: str, product_id: str) -> list[PsaLine]:
        """Recurring lines of a product on an agreement whose cancelled date is empty or after the end
        of the current month (RULES.md §1). Kept per (agreement, product): the lines never change
        during a reconciliation (callers get a copy)."""
        found = self._active_lines.get((agreement_id, product_id))
        if found is None:
            month_end = self.month_end
            found = self._active_lines[(agreement_id, product_id)] = [
                line
                for line in self._lines_by_product.get((agreement_id, product_id), ())
                if line.kind == "recurring"
                and (line.cancelled_date is None or line.cancelled_date > month_end)
            ]
        return list(found)

    def claim_line(
        self, candidates: list[PsaLine], subscription_id: str, sub_product: str | None = None
    ) -> PsaLine | None:
        """The PSA line that holds this subscription (and sub-product): one that names it as its source
        first, else the most recent unclaimed line without a source."""

        def matches_sub_product(line: PsaLine) -> bool:
            own = line.source.sub_product if line.source else None
            return own == sub_product or (own is None and sub_product is None)

        own = [
            line
            for line in candidates
            if line.source is not None
            and line.source.subscription_id == subscription_id
            and matches_sub_product(line)
        ]
        free = [
            line
            for line in candidates
            if line.id not in self.claimed_lines
            and (line.source is None or (line.source.subscription_id is None and matches_sub_product(line)))
        ]
        pool = own or free
        if not pool:
            return None
        chosen = max(pool, key=lambda line: (line.effective_date, _numeric_order(line.id)))
        self.claimed_lines.add(chosen.id)
        return chosen

    def seat_line(self, target: Target, product_id: str, subscription_id: str) -> PsaLine | None:
        """The PSA line holding a seat subscription: on the agreement its lines go to; failing that,
        a line that names the subscription as its source on another of the customer's agreements
        (it stays there — proposing a second line on the newer agreement would bill twice)."""
        line = self.claim_line(self.active_lines(target.agreement.id, product_id), subscription_id)
        if line is not None:
            return line
        elsewhere = [
            candidate
            for agreement in self.agreements_by_company.get(target.psa_company_id, [])
            if agreement.id != target.agreement.id
            for candidate in self.active_lines(agreement.id, product_id)
            if candidate.source is not None and candidate.source.subscription_id == subscription_id
        ]
        return self.claim_line(elsewhere, subscription_id) if elsewhere else None

    def description(self, text: str) -> str:
        return text[: self.description_limit]

    def line_description(self, product: VendorProduct, suffix: str = "") -> str:
        base = (
            f"{self.settings.description_prefix} - {product.name}"
            if self.settings.description_prefix
            else product.name
        )
        return self.description(base) + suffix

    # --- overrides -------------------------------------------------------------------------------

    def effective_override(self, key: str, default: date) -> date:
        override = self.overrides.get(key)
        if override is None or override.effective_date is None:
            return default
        if override.effective_date.day != 1 or override.effective_date < self.first_unbilled:
            self.raise_finding(
                "override_ignored",
                {"key": key},
                f"The effective date {override.effective_date.isoformat()} set on {key} is no longer valid "
                f"(it must be the 1st of a month on or after {self.first_unbilled.isoformat()}); "
                f"{default.isoformat()} is used.",
            )
            return default
        return override.effective_date


def bill_options(binding: ProductBinding) -> dict[str, Any]:
    """The PlanLine fields a binding's taxable flag and bill option set (issue 13)."""
    return {"taxable": binding.taxable, "bill_option": binding.bill_option}


def money_line(*, months: int | None = None, **fields: Any) -> PlanLine:
    """A PlanLine with totals = quantity × unit × months, rounded half-up to cents (the units are
    already rounded where RULES.md says so), and its fingerprint."""
    quantity: Decimal = fields["quantity"]
    unit_price: Decimal = fields["unit_price"]
    unit_cost: Decimal = fields["unit_cost"]
    times = months or 1
    fingerprint = "|".join(
        map(
            str,
            (
                fields["action"],
                quantity,
                unit_price,
                unit_cost,
                fields["effective_date"],
                fields.get("end_date"),
                times,
            ),
        )
    )
    return fast(
        PlanLine,
        {
            **_PLAN_LINE_DEFAULTS,
            **fields,
            "months": months,
            "total_price": round_cents(quantity * unit_price * times),
            "total_cost": round_cents(quantity * unit_cost * times),
            "fingerprint": fingerprint,
        },
    )


# Every field a PlanLine gets when the rules do not set it (lines are built without re-validation).
_PLAN_LINE_DEFAULTS = {
    name: info.get_default(call_default_factory=True)
    for name, info in PlanLine.model_fields.items()
    if not info.is_required()
}


@dataclass(frozen=True, slots=True)
class OptionChange:
    """How an existing PSA line's billing differs from its binding's (issue 13): the PlanLine
    fields of the update that rewrites it, and the reason's words."""

    fields: dict[str, Any]
    note: str


def option_change(world: World, line: PsaLine, binding: ProductBinding | None) -> OptionChange | None:
    """The binding's bill option / taxable flag against what the PSA line was read holding. Only
    for a PSA with `Capability.LINE_BILL_OPTIONS`; a value not read (None on the PsaLine) is not
    compared, nor is a binding's taxable None (the PSA product's default)."""
    if binding is None or not world.line_bill_options:
        return None
    fields: dict[str, Any] = {}
    notes: list[str] = []
    if line.bill_option is not None and line.bill_option != binding.bill_option:
        fields["previous_bill_option"] = line.bill_option
        notes.append(
            f"bill option {BILL_OPTION_LABELS[binding.bill_option]} (was {BILL_OPTION_LABELS[line.bill_option]})"
        )
    if binding.taxable is not None and line.taxable is not None and line.taxable != binding.taxable:
        fields["previous_taxable"] = line.taxable
        notes.append(f"{_taxable_text(binding.taxable)} (was {_taxable_text(line.taxable)})")
    if not fields:
        return None
    return OptionChange({**fields, **bill_options(binding)}, "; ".join(notes))


def _taxable_text(taxable: bool) -> str:
    return "taxable" if taxable else "not taxable"
