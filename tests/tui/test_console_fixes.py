"""Issue 13, Pilot: every finding's fix is a key. Enter on a finding jumps to where it is fixed and
names the key; N creates the customer in the PSA (the ConnectWise sandbox) and maps it; k
acknowledges credit_due with why; e on an update-only line says seed 001's words; C creates new
instead of updating; U undoes an unmap; f marks a product free and a re-bind keeps it; the bind
picker opens on the PSA product of the same SKU; m works in Errors."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import httpx
from sqlmodel import select

from engine import actions
from engine.connectors.connectwise import ConnectWiseConnector
from engine.rules.findings import CODES
from engine.sandbox.connectwise import ConnectWiseSandbox
from engine.store import tables as t
from tui.app import TrueupApp
from tui.bindings import REGISTRY
from tui.screens.confirm import ConfirmModal
from tui.screens.fixes import FIXES, PreselectPickerModal, TextModal, how_to_fix
from tui.screens.map_company import MapCompanyModal
from tui.workspace import StoreWorkspace

SIZE = (120, 40)
AS_OF = date(2026, 11, 21)  # tests/tui/conftest.py's clock and freshness
NOW = datetime(2026, 11, 21, 9, 30)
FRESH = {"vendor": datetime(2026, 11, 21, 9, 0), "psa": datetime(2026, 11, 21, 9, 1)}


def mappings(store: Any) -> dict[str, str]:
    with store.session() as s:
        return {r.vendor_id: r.psa_id for r in s.exec(select(t.CompanyMappingRow))}


def notices(app: TrueupApp) -> list[str]:
    return [str(n.message) for n in app._notifications]


async def errors_row(app: Any, pilot: Any, code: str, settle: Any) -> Any:
    await pilot.press("6")
    await settle(app, pilot)
    pane = app.main.pane("errors")
    index = next(i for i, k in enumerate(pane.table.keys) if k.startswith(code + "|"))
    pane.table.move_cursor(row=index)
    await pilot.pause()
    return pane.current


def test_every_finding_code_has_a_fix_naming_real_keys() -> None:
    assert set(FIXES) == set(CODES)
    ids = {c.id for c in REGISTRY}
    for code, fix in FIXES.items():
        assert set(fix.commands) <= ids, code
        text = how_to_fix(code)
        assert "{" not in text, code  # every placeholder resolved to a key
    assert how_to_fix("credit_due") == "issue the credit in the PSA, then k records 'credit issued'"
    assert how_to_fix("credit_due", {"acknowledge": "K"}).endswith("then K records 'credit issued'")


async def test_enter_on_a_finding_jumps_to_the_customer_and_names_the_keys(
    make_app: Any, settle: Any
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        row = await errors_row(app, pilot, "company_not_mapped", settle)
        await pilot.press("enter")
        await settle(app, pilot)
        assert app.main.active == "customers"
        assert app.main.pane("customers").current.key == row.company_id
        assert any("m maps it to a PSA company; N creates it in the PSA" in n for n in notices(app))


async def test_m_in_errors_maps_the_findings_customer(make_app: Any, store: Any, settle: Any) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        row = await errors_row(app, pilot, "company_not_mapped", settle)
        await pilot.press("m")
        assert isinstance(app.screen, MapCompanyModal)
        free = next(cid for cid, _ in app.data.psa_companies if cid not in mappings(store).values())
        app.screen.query_one("#search").value = free
        await pilot.pause()
        await pilot.press("enter")
        await settle(app, pilot)
        assert mappings(store)[row.company_id] == free


async def test_import_creates_the_company_in_the_psa_and_maps_it(
    store: Any, scenario: Any, settle: Any
) -> None:
    sandbox = ConnectWiseSandbox.from_scenario(scenario)

    async def no_sleep(_: float) -> None:
        return None

    psa = ConnectWiseConnector(
        sandbox.site,
        sandbox.company_id,
        sandbox.public_key,
        sandbox.private_key,
        sandbox.client_id,
        transport=httpx.MockTransport(sandbox.handle),
        sleep=no_sleep,
    )
    workspace = StoreWorkspace(store, label="SANDBOX — test", sandbox=True, freshness=FRESH, psa=psa)
    app = TrueupApp(workspace, clock=lambda: NOW, as_of=AS_OF, refresh_interval=None, save_delay=0)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        row = await errors_row(app, pilot, "company_not_mapped", settle)
        name = app.data.company(row.company_id)
        before = len(sandbox.companies)
        await pilot.press("N")
        assert isinstance(app.screen, ConfirmModal)
        await pilot.press("y")
        await settle(app, pilot)
        assert len(sandbox.companies) == before + 1
        created = max(sandbox.companies.values(), key=lambda c: c["id"])
        assert created["name"] == name
        assert mappings(store)[row.company_id] == str(created["id"])
        assert not [
            f
            for f in app.data.plan.findings
            if f.code == "company_not_mapped" and f.subject["vendor_company_id"] == row.company_id
        ]
    await psa.aclose()


async def test_import_without_a_psa_says_why(make_app: Any, settle: Any) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await errors_row(app, pilot, "company_not_mapped", settle)
        await pilot.press("N")
        await settle(app, pilot)
        assert app.screen is app.main
        assert any("No PSA connection is open" in n for n in notices(app))
        await errors_row(app, pilot, "credit_due", settle)
        await pilot.press("N")
        assert any("Import fixes company_not_mapped; this is credit_due" in n for n in notices(app))


async def test_k_acknowledges_credit_due_with_why_and_u_undoes_it(
    make_app: Any, store: Any, settle: Any
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        row = await errors_row(app, pilot, "credit_due", settle)
        await pilot.press("k")
        assert isinstance(app.screen, TextModal)
        await pilot.press(*"credit issued CN-7", "enter")
        await settle(app, pilot)
        [ack] = actions.acknowledgements(store).values()
        assert (ack.key, ack.code, ack.reason) == (row.key, "credit_due", "credit issued CN-7")
        await pilot.press("enter")  # the finding now says who acknowledged it
        await settle(app, pilot)
        assert any("acknowledged by" in n and "credit issued CN-7" in n for n in notices(app))
        await pilot.press("U")
        assert isinstance(app.screen, ConfirmModal)
        await pilot.press("y")
        await settle(app, pilot)
        assert actions.acknowledgements(store) == {}
        # an error is not acknowledged: the key says why
        await errors_row(app, pilot, "no_active_agreement", settle)
        await pilot.press("k")
        assert app.screen is app.main
        assert any("no_active_agreement is an error" in n for n in notices(app))


async def test_e_on_an_update_line_says_it_cannot_change_and_c_creates_new(
    make_app: Any, store: Any, settle: Any
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("3")
        await settle(app, pilot)
        pane = app.main.pane("unsynced")
        index = next(i for i, k in enumerate(pane.table.keys) if not pane.by_key[k].editable)
        pane.table.move_cursor(row=index)
        await pilot.pause()
        row = pane.current
        await pilot.press("e")
        assert app.screen is app.main
        assert any("Cannot be changed when updating existing addition" in n for n in notices(app))
        sub = next(app.data.lines[k].subscription_id for k in row.line_keys if k.endswith(":recurring"))
        await pilot.press("C")
        await settle(app, pilot)
        assert app.data.lines[f"{sub}:recurring"].action == "create"
        with store.session() as s:
            assert s.get(t.OverrideRow, f"{sub}:recurring").create_new is True
        await pilot.press("U", "y")
        await settle(app, pilot)
        assert app.data.lines[f"{sub}:recurring"].action == "update"


async def test_u_undoes_an_unmap(make_app: Any, store: Any, settle: Any) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("2")
        await settle(app, pilot)
        pane = app.main.pane("customers")
        index = next(i for i, k in enumerate(pane.table.keys) if pane.by_key[k].status == "mapped")
        pane.table.move_cursor(row=index)
        await pilot.pause()
        vendor_id = pane.current.key
        was = mappings(store)[vendor_id]
        await pilot.press("u")
        await settle(app, pilot)
        if isinstance(app.screen, ConfirmModal):  # an unmap that asks first (issue 13, the console's part)
            await pilot.press("y")
            await settle(app, pilot)
        assert vendor_id not in mappings(store)
        await pilot.press("U")
        assert isinstance(app.screen, ConfirmModal)
        await pilot.press("y")
        await settle(app, pilot)
        assert mappings(store)[vendor_id] == was


async def test_products_free_survives_a_rebind_and_bind_preselects_the_sku(
    make_app: Any, store: Any, settle: Any
) -> None:
    from tui.screens.products import ProductsScreen

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("p")
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, ProductsScreen)
        pane = screen.pane
        # a bound product whose SKU a PSA product carries
        candidates = [
            (i, key.split("|")[0], actions.same_sku_product(store, key.split("|")[0]))
            for i, key in enumerate(pane.table.keys)
            if key.endswith("|") and (key.split("|")[0], "") in app.data.bindings
        ]
        index, product_id, same = next(c for c in candidates if c[2] is not None)
        pane.table.move_cursor(row=index)
        await pilot.pause()
        await pilot.press("f")
        await settle(app, pilot)
        with store.session() as s:
            assert s.get(t.ProductBindingRow, (product_id, "")).free is True
        await pilot.press("b")
        assert isinstance(app.screen, PreselectPickerModal)
        options = app.screen.query_one("#psa-products")
        assert options.get_option_at_index(options.highlighted).id in (
            same,
            app.data.bindings[(product_id, "")].psa_product_id,
        )
        await pilot.press("enter")  # re-bind (to what is highlighted)
        await settle(app, pilot)
        with store.session() as s:
            assert s.get(t.ProductBindingRow, (product_id, "")).free is True  # re-binding keeps it


async def test_bind_picker_opens_on_the_same_sku(make_app: Any, store: Any, settle: Any) -> None:
    from tui.screens.products import ProductsScreen

    with store.session() as s:  # an unbound vendor product whose SKU one PSA product has
        s.add(t.VendorProductRow(id="vp-x", sku="SKU-X1", name="Aardvark Backup"))
        s.add(t.PsaProductRow(id="pp-x", name="Aardvark Backup (PSA)", sku="sku-x1"))
        s.commit()
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("p")
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, ProductsScreen)
        keys = screen.pane.table.keys
        assert "vp-x|" in keys
        screen.pane.table.move_cursor(row=keys.index("vp-x|"))
        await pilot.pause()
        await pilot.press("b")
        options = app.screen.query_one("#psa-products")
        assert options.get_option_at_index(options.highlighted).id == "pp-x"
        await pilot.press("enter")
        await settle(app, pilot)
        with store.session() as s:
            assert s.get(t.ProductBindingRow, ("vp-x", "")).psa_product_id == "pp-x"


async def test_products_n_creates_the_product_in_the_psa_and_binds_it(store: Any, settle: Any) -> None:
    """Seed 001 "Export Product" / seed 004's wizard, on the HaloPSA sandbox."""
    from engine.connectors.halopsa import HaloConnector
    from engine.sandbox.halopsa import HaloSandbox
    from engine.scenario import Scenario
    from tui.screens.product_wizard import ProductWizardModal
    from tui.screens.products import ProductsScreen

    sandbox = HaloSandbox.from_scenario(
        Scenario.model_validate({"as_of": "2026-11-21", "settings": {"psa": "halopsa"}})
    )

    async def no_sleep(_: float) -> None:
        return None

    psa = HaloConnector(
        sandbox.base_url,
        sandbox.client_id,
        sandbox.client_secret,
        transport=httpx.MockTransport(sandbox.handle),
        sleep=no_sleep,
    )
    workspace = StoreWorkspace(store, label="SANDBOX — test", sandbox=True, freshness=FRESH, psa=psa)
    app = TrueupApp(workspace, clock=lambda: NOW, as_of=AS_OF, refresh_interval=None, save_delay=0)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("p")
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, ProductsScreen)
        row = screen.pane.current
        assert row.cells[-1] == "NOT BOUND"
        product_id = row.key.split("|")[0]
        await pilot.press("N")
        assert isinstance(app.screen, ProductWizardModal)
        wizard = app.screen
        name, sku, _, _ = actions.product_defaults(store, product_id)
        assert wizard.query_one("#wizard-name").value == name
        wizard.query_one("#wizard-price").value = "12.345"
        await pilot.press("ctrl+s")
        assert app.screen is wizard  # refused inline, nothing sent
        assert "at most 2 decimal places" in str(wizard.query_one("#wizard-error").render())
        assert not sandbox.items
        wizard.query_one("#wizard-price").value = "30.00"
        wizard.query_one("#wizard-cost").value = "24.00"
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        # the PSA has a product of that SKU already: refused, bind to it instead
        assert any(f"with SKU {sku}; bind to it (b) instead" in n for n in notices(app))
        assert not sandbox.items
        await pilot.press("N")
        wizard = app.screen
        wizard.query_one("#wizard-sku").value = "TU-NEW-1"
        wizard.query_one("#wizard-price").value = "30.00"
        wizard.query_one("#wizard-cost").value = "24.00"
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        [item] = sandbox.items.values()
        assert (item["name"], item["baseprice"], item["costprice"]) == (name, 30, 24)
        with store.session() as s:
            assert s.get(t.ProductBindingRow, (product_id, "")).psa_product_id == str(item["id"])
        assert not [f for f in app.data.plan.findings if f.code == "product_not_bound"]
    await psa.aclose()


async def test_a_picks_the_agreement_for_a_customer_with_several(
    make_app: Any, store: Any, settle: Any
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        row = await errors_row(app, pilot, "multiple_active_agreements", settle)
        finding = next(f for f in app.data.plan.findings if f.code == "multiple_active_agreements")
        vendor_id = finding.subject["vendor_company_id"]
        choices = actions.agreements_of(store, vendor_id)
        assert len(choices) >= 2 and row.company_id == vendor_id
        await pilot.press("A")
        assert isinstance(app.screen, PreselectPickerModal)
        other = next(aid for aid, _ in choices if aid != finding.subject["psa_agreement_id"])
        app.screen.query_one("#search").value = other
        await pilot.pause()
        await pilot.press("enter")
        await settle(app, pilot)
        assert actions.chosen_agreement(store, vendor_id) == other
        # the pick is the explicit choice: the warning clears (lines already on an agreement stay there)
        assert not [
            f
            for f in app.data.plan.findings
            if f.code == "multiple_active_agreements" and f.subject.get("vendor_company_id") == vendor_id
        ]


async def test_f_on_no_product_to_sync_marks_the_product_free(make_app: Any, store: Any, settle: Any) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await errors_row(app, pilot, "no_product_to_sync", settle)
        finding = next(f for f in app.data.plan.findings if f.code == "no_product_to_sync")
        product = actions.product_of(store, finding.subject["subscription_id"])
        await pilot.press("f")
        await settle(app, pilot)
        with store.session() as s:
            assert s.get(t.ProductBindingRow, (product, "")).free is True
        assert "no_product_to_sync" not in {f.code for f in app.data.plan.findings}
        await pilot.press("U", "y")
        await settle(app, pilot)
        assert "no_product_to_sync" in {f.code for f in app.data.plan.findings}
