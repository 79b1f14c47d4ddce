"""Scenarios with many lines to sync, the three PSA sandboxes wired to real connectors, fault
injection at the N-th write, and checks of the sandbox's own state (imported as `sync_builder`)."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import httpx

from engine.connectors.autotask import (
    CHARGE_KEY_LIMIT,
    NOTE_KEY,
    _note_value,
    key_from_marker,
)
from engine.connectors.connectwise import SERIAL_MAX, ConnectWiseConnector, KeyCodec
from engine.connectors.halopsa import KEY_FIELD, KEY_MAX, HaloConnector
from engine.plan import PlanLine
from engine.reconcile import reconcile
from engine.sandbox.autotask import AutotaskSandbox
from engine.sandbox.connectwise import ConnectWiseSandbox
from engine.sandbox.faults import Fault, Faults
from engine.sandbox.halopsa import HaloSandbox
from engine.scenario import Psa, Scenario
from engine.store import Store
from engine.verify import planned_quantity

PSAS = ("connectwise", "halopsa", "autotask")
AS_OF = date(2026, 3, 10)
CHANGE_DAY = date(2026, 3, 5)
E = date(2026, 4, 1)  # the first day not invoiced (invoiced_through = 2026-03-31)

_ = CHARGE_KEY_LIMIT  # (imported so a rename in the connector shows up here)


def sub_id(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"trueup-sync-test/{name}"))


def build_scenario(
    psa: str = "connectwise",
    *,
    new: int = 25,
    updates: int = 3,
    cancels: int = 2,
    create_new: int = 1,
    record_only: int = 1,
    companies: int = 5,
) -> Scenario:
    """`new` subscriptions bought on 2026-03-05 (a recurring create + a prorate each), `updates`
    with an existing line and an increase (update + prorate), `cancels` cancelled ones (cancel),
    `create_new` with the create-new override (create + cancel the old line + prorate) and
    `record_only` bought at price 0 (recurring create at 0 + a record-only prorate)."""
    vendor_companies, psa_companies, agreements, company_maps, agreement_maps = [], [], [], [], []
    for c in range(companies):
        vendor_companies.append({"id": f"vc{c}", "name": f"Customer {c:02d} Ltd"})
        psa_companies.append({"id": str(100 + c), "name": f"Customer {c:02d} Ltd"})
        agreements.append(
            {
                "id": str(200 + c),
                "company_id": str(100 + c),
                "name": f"Managed {c}",
                "start_date": "2019-01-01",
            }
        )
        company_maps.append({"vendor_id": f"vc{c}", "psa_id": str(100 + c)})
        agreement_maps.append({"vendor_company_id": f"vc{c}", "psa_agreement_id": str(200 + c)})
    n_products = 12
    products = [{"id": f"vp{p}", "name": f"Seat Product {p}", "kind": "seat"} for p in range(n_products)]
    products.append({"id": "vp-free", "name": "Free Seat Product", "kind": "seat"})
    psa_products = [
        {
            "id": str(300 + p),
            "name": f"Seat Product {p}",
            "sku": f"SP-{p}",
            "unit_price": "6.00",
            "unit_cost": "5.00",
        }
        for p in range(n_products)
    ]
    psa_products.append({"id": "399", "name": "Free Seat Product", "sku": "FREE"})
    bindings = [{"vendor_product_id": f"vp{p}", "psa_product_id": str(300 + p)} for p in range(n_products)]
    bindings.append({"vendor_product_id": "vp-free", "psa_product_id": "399"})
    subs: list[dict[str, Any]] = []
    lines: list[dict[str, Any]] = []
    overrides: list[dict[str, Any]] = []
    slot = Counter[str]()  # product slots per company (one subscription per product and agreement)
    next_line = 8000

    def place() -> tuple[int, str]:
        index = len(subs)
        company = index % companies
        product = slot[f"c{company}"]
        slot[f"c{company}"] += 1
        assert product < n_products, "too many subscriptions for the products per company"
        return company, f"vp{product}"

    def add_sub(
        name: str,
        history: list[tuple[str, int, date]],
        *,
        price: str = "6.00",
        cost: str = "5.00",
        status: str = "active",
        cancelled: date | None = None,
        product: str | None = None,
    ) -> tuple[str, int]:
        company, chosen = place()
        sid = sub_id(name)
        subs.append(
            {
                "id": sid,
                "company_id": f"vc{company}",
                "product_id": product or chosen,
                "start_date": "2025-01-01",
                "unit_price": price,
                "unit_cost": cost,
                "status": status,
                "cancelled_date": cancelled,
                "history": [
                    {"id": f"{name}-h{i}", "action": a, "quantity": str(q), "effective_date": d}
                    for i, (a, q, d) in enumerate(history)
                ],
            }
        )
        return sid, company

    def add_line(sid: str, company: str | int, product_id: str, quantity: int) -> str:
        nonlocal next_line
        next_line += 1
        lines.append(
            {
                "id": str(next_line),
                "agreement_id": str(200 + int(company)),
                "product_id": product_id,
                "quantity": str(quantity),
                "unit_price": "6.00",
                "unit_cost": "5.00",
                "effective_date": "2025-01-01",
                "description": "Pax8 - existing",
                "source": {"subscription_id": sid, "key": f"{sid}:recurring"},
            }
        )
        return str(next_line)

    for i in range(new):
        add_sub(f"new{i}", [("initial", 1 + i % 9, CHANGE_DAY)])
    for i in range(updates):
        sid, company = add_sub(
            f"upd{i}", [("initial", 10, date(2025, 1, 1)), ("increase", 12 + i, CHANGE_DAY)]
        )
        add_line(sid, company, str(300 + int(subs[-1]["product_id"].removeprefix("vp"))), 10)
    for i in range(cancels):
        sid, company = add_sub(
            f"can{i}",
            [("initial", 5, date(2025, 1, 1)), ("cancel", 0, date(2026, 3, 20))],
            status="cancelled",
            cancelled=date(2026, 3, 20),
        )
        add_line(sid, company, str(300 + int(subs[-1]["product_id"].removeprefix("vp"))), 5)
    for i in range(create_new):
        sid, company = add_sub(f"cnew{i}", [("initial", 8, date(2025, 1, 1)), ("increase", 9, CHANGE_DAY)])
        add_line(sid, company, str(300 + int(subs[-1]["product_id"].removeprefix("vp"))), 8)
        overrides.append({"key": f"{sid}:recurring", "create_new": True})
    for i in range(record_only):
        add_sub(f"zero{i}", [("initial", 3, CHANGE_DAY)], price="0.00", cost="0.00", product="vp-free")

    return Scenario.model_validate(
        {
            "as_of": AS_OF.isoformat(),
            "settings": {"psa": psa},
            "vendor": {"companies": vendor_companies, "products": products, "subscriptions": subs},
            "psa": {
                "companies": psa_companies,
                "products": psa_products,
                "agreements": agreements,
                "lines": lines,
            },
            "mappings": {"companies": company_maps, "products": bindings, "agreements": agreement_maps},
            "overrides": overrides,
        }
    )


# --- sandboxes and connectors ---------------------------------------------------------------------


async def no_sleep(_seconds: float) -> None:
    return None


class SleepLog:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def is_write(request: httpx.Request) -> bool:
    path = request.url.path.lower()
    return request.method != "GET" and not path.endswith("/query") and "token" not in path


@dataclass
class WriteFaults:
    """Wraps a sandbox's handler: pushes scripted faults just before chosen writes (1-based)."""

    faults: Faults
    plan: dict[int, Fault] = field(default_factory=dict)
    writes: int = 0
    injected: list[tuple[int, Fault]] = field(default_factory=list)

    def wrap(self, handle: Any) -> Any:
        async def handler(request: httpx.Request) -> httpx.Response:
            if is_write(request):
                self.writes += 1
                fault = self.plan.get(self.writes)
                if fault is not None:
                    self.faults.push(fault)
                    self.injected.append((self.writes, fault))
            return await handle(request)

        return handler


@dataclass
class Rig:
    psa: str
    sandbox: Any
    faults: Faults
    writes: WriteFaults
    initial_ids: set[str]
    sleep: Any = no_sleep

    def connector(self, sleep: Any = None) -> Any:
        transport = httpx.MockTransport(self.writes.wrap(self.sandbox.handle))
        sleep = sleep or self.sleep
        if self.psa == "connectwise":
            sb = self.sandbox
            return ConnectWiseConnector(
                sb.site,
                sb.company_id,
                sb.public_key,
                sb.private_key,
                sb.client_id,
                codebase=sb.codebase,
                transport=transport,
                sleep=sleep,
            )
        if self.psa == "halopsa":
            sb = self.sandbox
            return HaloConnector(
                sb.base_url,
                sb.client_id,
                sb.client_secret,
                tenant=sb.tenant,
                transport=transport,
                sleep=sleep,
            )
        from engine.connectors.autotask import AutotaskConnector

        sb = self.sandbox
        return AutotaskConnector(
            sb.username,
            sb.secret,
            sb.integration_code,
            zone_url=sb.zone_url,
            transport=transport,
            sleep=sleep,
        )

    # --- the sandbox's own state, by key ---

    def keyed_lines(self) -> list[tuple[str, str | None]]:
        """(line id, trueup key or None) of every line the sandbox holds."""
        if self.psa == "connectwise":
            codec = KeyCodec(SERIAL_MAX)
            return [
                (str(a["id"]), codec.decode(a.get("serialNumber"))) for a in self.sandbox.additions.values()
            ]
        if self.psa == "halopsa":
            codec = KeyCodec(KEY_MAX)
            return [(str(r["id"]), codec.decode(r.get(KEY_FIELD))) for r in self.sandbox.lines.values()]
        out = [
            (str(s["id"]), key_from_marker(s.get("internalDescription")))
            for s in self.sandbox.tables["ContractServices"].values()
        ]
        out += [
            (
                str(c["id"]),
                _note_value(c.get("notes"), NOTE_KEY)
                or key_from_marker(c.get("internalPurchaseOrderNumber")),
            )
            for c in self.sandbox.tables["ContractCharges"].values()
        ]
        return out

    def new_lines_by_key(self) -> Counter[str]:
        return Counter(key for lid, key in self.keyed_lines() if lid not in self.initial_ids and key)

    def writes_applied(self) -> int:
        return int(getattr(self.sandbox, "writes", 0))


def make_rig(psa: str, scenario: Scenario, faults: Faults | None = None) -> Rig:
    faults = faults or Faults()
    cls = {"connectwise": ConnectWiseSandbox, "halopsa": HaloSandbox, "autotask": AutotaskSandbox}[psa]
    sandbox = cls.from_scenario(scenario, faults=faults)
    if psa == "autotask" and sandbox.faults is None:
        sandbox.faults = faults
    return Rig(
        psa=psa,
        sandbox=sandbox,
        faults=faults,
        writes=WriteFaults(faults),
        initial_ids={line.id for line in scenario.psa.lines},
    )


def load_store(url: str, scenario: Scenario) -> Store:
    store = Store(url)
    store.import_scenario(scenario)
    return store


# --- checks ---------------------------------------------------------------------------------------


async def psa_problems(rig: Rig, lines: Iterable[PlanLine]) -> list[str]:
    """Every plan line is in the PSA exactly as intended, exactly once (read from the sandbox's own
    state for the keys, and through a fault-free connector for the values)."""
    saved = (
        rig.faults.rate_429,
        rig.faults.rate_503,
        rig.faults.rate_500_after_apply,
        rig.faults.rate_lost_response,
    )
    rig.faults.rate_429 = rig.faults.rate_503 = rig.faults.rate_500_after_apply = (
        rig.faults.rate_lost_response
    ) = 0
    rig.faults.script.clear()
    try:
        connector = rig.connector()
        current = {line.id: line for line in await connector.lines()}
        await connector.aclose()
    finally:
        (
            rig.faults.rate_429,
            rig.faults.rate_503,
            rig.faults.rate_500_after_apply,
            rig.faults.rate_lost_response,
        ) = saved
    problems: list[str] = []
    new = rig.new_lines_by_key()
    by_key: dict[str, list[str]] = {}
    for lid, key in rig.keyed_lines():
        if lid not in rig.initial_ids and key:
            by_key.setdefault(key, []).append(lid)
    expected_new: set[str] = set()
    for line in lines:
        if line.record_only:
            if new.get(line.key):
                problems.append(f"{line.key}: record-only line was written to the PSA")
            continue
        if line.action == "create":
            expected_new.add(line.key)
            if new.get(line.key, 0) != 1:
                problems.append(f"{line.key}: {new.get(line.key, 0)} lines in the PSA (expected exactly 1)")
                continue
            written = current[by_key[line.key][0]]
            if written.quantity != planned_quantity(line) or written.unit_price != line.unit_price:
                problems.append(
                    f"{line.key}: PSA has {written.quantity} × {written.unit_price}, "
                    f"plan {planned_quantity(line)} × {line.unit_price}"
                )
            if line.replaces_line_id:
                old = current[line.replaces_line_id]
                if old.cancelled_date is None or old.cancelled_date > line.effective_date - timedelta(days=1):
                    problems.append(f"{line.key}: replaced line {old.id} not ended ({old.cancelled_date})")
        else:
            assert line.psa_line_id is not None
            now = current[line.psa_line_id]
            if line.action == "cancel":
                if now.cancelled_date is None or line.end_date is None or now.cancelled_date > line.end_date:
                    problems.append(f"{line.key}: not cancelled ({now.cancelled_date})")
                if rig.psa == "autotask" and rig.sandbox.units(int(now.id)) != 0:
                    problems.append(f"{line.key}: {rig.sandbox.units(int(now.id))} units left after cancel")
            elif now.quantity != line.quantity:
                problems.append(f"{line.key}: PSA quantity {now.quantity}, plan {line.quantity}")
    extra = set(new) - expected_new
    if extra:
        problems.append(f"lines in the PSA that no plan line asked for: {sorted(extra)}")
    if rig.psa == "autotask":  # a re-sent units adjustment would double the units
        for lid, key in rig.keyed_lines():
            if lid in rig.initial_ids or not key or key not in {ln.key for ln in lines}:
                continue
            line = next(ln for ln in lines if ln.key == key)
            if lid in {str(i) for i in rig.sandbox.tables["ContractServices"]} and rig.sandbox.units(
                int(lid)
            ) != int(line.quantity):
                problems.append(f"{key}: {rig.sandbox.units(int(lid))} units scheduled, plan {line.quantity}")
    return problems


async def refreshed_plan_keys(store: Store, rig: Rig) -> set[str]:
    """Refresh the store's PSA side from the PSA (no faults), reconcile, and return the plan's keys."""
    saved = rig.faults.script.copy()
    rig.faults.script.clear()
    rates = (
        rig.faults.rate_429,
        rig.faults.rate_503,
        rig.faults.rate_500_after_apply,
        rig.faults.rate_lost_response,
    )
    rig.faults.rate_429 = rig.faults.rate_503 = rig.faults.rate_500_after_apply = (
        rig.faults.rate_lost_response
    ) = 0
    try:
        connector = rig.connector()
        psa = Psa(
            companies=await connector.companies(),
            products=await connector.products(),
            agreements=await connector.agreements(),
            lines=await connector.lines(),
        )
        await connector.aclose()
    finally:
        rig.faults.script.extend(saved)
        (
            rig.faults.rate_429,
            rig.faults.rate_503,
            rig.faults.rate_500_after_apply,
            rig.faults.rate_lost_response,
        ) = rates
    store.replace_psa(psa)
    return {line.key for line in reconcile(store.snapshot()).lines}


def plan_lines(store: Store) -> list[PlanLine]:
    return reconcile(store.snapshot()).lines


D = Decimal
