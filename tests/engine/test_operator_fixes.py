"""Issue 13: every finding's fix is an engine action (typed, audited, undoable until the next sync),
tested without Textual: near matches across company suffixes, mark free, re-bind keeps free,
acknowledge a warning, create new vs update, notes carried into the audit, import a company."""

from __future__ import annotations

from datetime import date

import httpx
import pytest
from builders import COMPANY, build, psa_line, seat_sub, synced

from engine import actions, audit
from engine.connectors.halopsa import HaloConnector
from engine.rules.findings import finding_key
from engine.sandbox.faults import Fault
from engine.sandbox.halopsa import HaloSandbox
from engine.scenario import Scenario
from engine.store import Store, plan_cache
from engine.store import tables as t

AS_OF = date(2020, 9, 20)
SUB = seat_sub("S1", ("2019-01-01", 270), ("2020-08-05", 282), ("2020-08-17", 283))


@pytest.fixture
def store() -> Store:
    s = Store.memory()
    s.import_scenario(
        build(
            AS_OF.isoformat(),
            subs=[SUB],
            lines=[psa_line("L1", 270, sub="S1")],
            synced_keys=[synced("S1:prorate:2019-01-01")],
            companies=[
                COMPANY,
                {"id": "qh", "name": "Quarry Hill Foods LLC"},
                {"id": "new", "name": "Gotham Clinic"},
            ],
            psa_companies=[
                {"id": "P1", "name": "Acme Dental PC"},
                {"id": "PQ", "name": "Quarry Hill Foods, L.L.C."},
            ],
            products=[
                {"id": "seat", "sku": "M365-BB", "name": "Microsoft 365 Business Basic"},
                {"id": "bk", "name": "Backup", "kind": "quota"},
            ],
            psa_products=[
                {"id": "PP1", "name": "M365 Basic", "sku": "M365-BB"},
                {"id": "PP2", "name": "Backup GB"},
                {"id": "PP3", "name": "Backup TB"},
            ],
        )
    )
    yield s
    s.close()


def events(store: Store) -> list[audit.AuditEvent]:
    with store.session() as s:
        return audit.events(s)


def state(store: Store) -> str:
    return store.snapshot(AS_OF).model_dump_json()


def binding(store: Store, product: str) -> tuple[str, bool] | None:
    for b in store.snapshot(AS_OF).mappings.products:
        if b.vendor_product_id == product:
            return b.psa_product_id, b.free
    return None


# --- near matches (issue 13 item 7) -----------------------------------------------------------------


def test_dotted_company_suffix_is_a_near_match() -> None:
    assert actions.loose_name("Quarry Hill Foods LLC") == actions.loose_name("Quarry Hill Foods, L.L.C.")
    assert actions.loose_name("U.S. Dental P.C.") == "us dental"  # initials are kept, the suffix goes
    assert actions.loose_name("A.B. Smith") != actions.loose_name("Smith")


def test_generate_mappings_suggests_the_llc_spelling(store: Store) -> None:
    generated = actions.generate_mappings(store, apply=False)
    assert [(s.vendor_id, s.psa_id) for s in generated.suggestions] == [("qh", "PQ")]


# --- free / not free; re-binding keeps the flag -----------------------------------------------------


def test_mark_free_then_rebind_keeps_it_and_undo_restores(store: Store) -> None:
    actions.bind_product(store, "bk", "PP2", user="ann")
    actions.set_free(store, "bk", True, user="ann")
    assert binding(store, "bk") == ("PP2", True)
    actions.bind_product(store, "bk", "PP3", user="ann")  # issue 13: re-binding reset the free flag
    assert binding(store, "bk") == ("PP3", True)
    with pytest.raises(actions.ActionError, match="already free"):
        actions.set_free(store, "bk", True)
    actions.undo(store, user="bob")  # the re-bind
    assert binding(store, "bk") == ("PP2", True)
    actions.undo(store, user="bob")  # the mark
    assert binding(store, "bk") == ("PP2", False)
    actions.undo(store, user="bob")  # the first bind
    assert binding(store, "bk") is None
    assert [e.action for e in events(store)][-3:] == ["undo", "undo", "undo"]


def test_mark_free_needs_a_binding(store: Store) -> None:
    with pytest.raises(
        actions.ActionError, match=r"not bound to a PSA product; bind it first \(Products: b\)"
    ):
        actions.set_free(store, "bk", True)


# --- undo until the next sync -----------------------------------------------------------------------


def test_undo_ignore_date_and_mapping_each_back_to_before(store: Store) -> None:
    original = state(store)
    actions.ignore(store, "S1:prorate:2020-08-05", reason="goodwill", as_of=AS_OF, user="ann")
    actions.set_effective_date(store, "S1:prorate:2020-08-17", date(2020, 11, 1), as_of=AS_OF, user="ann")
    actions.set_effective_date(store, "S1:prorate:2020-08-17", date(2020, 12, 1), as_of=AS_OF, user="ann")
    actions.unmap_company(store, "acme", user="ann")
    actions.map_company(store, "qh", "PQ", user="ann")
    actions.set_invoiced_through(store, date(2020, 9, 30), user="ann")
    undone = [actions.undo(store, user="bob").action for _ in range(3)]
    assert undone == ["set_invoiced_through", "map_company", "unmap_company"]
    dates = {x.key: x.effective_date for x in actions.current_plan(store, AS_OF).lines}
    assert dates["S1:prorate:2020-08-17"] == date(2020, 12, 1)
    actions.undo(store)  # the second date edit: back to the first one's date, not to none
    dates = {x.key: x.effective_date for x in actions.current_plan(store, AS_OF).lines}
    assert dates["S1:prorate:2020-08-17"] == date(2020, 11, 1)
    actions.undo(store)
    actions.undo(store)
    assert state(store) == original
    with pytest.raises(actions.ActionError, match="Nothing to undo since the last sync"):
        actions.undo(store)


def test_undo_stops_at_the_last_sync(store: Store) -> None:
    actions.ignore(store, "S1:prorate:2020-08-05", reason="x", as_of=AS_OF)
    with store.session() as s, s.begin():
        audit.record(s, "sync.created", "S1:recurring", after={"psa_line_id": "L9"})
    assert actions.undoable(store) == []
    with pytest.raises(actions.ActionError, match="Nothing to undo since the last sync"):
        actions.undo(store)


def test_undo_is_refused_when_the_item_changed_since(store: Store) -> None:
    actions.ignore(store, "S1:prorate:2020-08-05", reason="first", as_of=AS_OF)
    first = actions.undoable(store)[0].id
    actions.ignore(store, "S1:prorate:2020-08-05", reason="second", as_of=AS_OF)
    with pytest.raises(actions.ActionError, match="changed again after that ignore"):
        actions.undo(store, event_id=first)


# --- notes carried into the audit -------------------------------------------------------------------


def test_a_note_on_a_line_goes_with_every_action_on_it(store: Store) -> None:
    actions.add_note(store, "S1", "customer asked to hold until October", user="ann")
    actions.ignore(store, "S1:prorate:2020-08-05", reason="hold", as_of=AS_OF, user="ann")
    actions.add_note(store, "acme", "  billing contact: Jo  ", user="ann")
    actions.unmap_company(store, "acme", user="ann")
    ignore_event, unmap_event = (e for e in events(store) if e.action in ("ignore", "unmap_company"))
    assert ignore_event.after["note"] == "customer asked to hold until October"
    assert unmap_event.after["note"] == "billing contact: Jo"
    assert actions.notes(store) == {
        "S1": "customer asked to hold until October",
        "acme": "billing contact: Jo",
    }
    actions.add_note(store, "S1", "")  # cleared
    assert actions.notes(store) == {"acme": "billing contact: Jo"}


# --- acknowledge a warning --------------------------------------------------------------------------


def credit_store() -> Store:
    s = Store.memory()
    sub = seat_sub("S1", ("2020-01-01", 4), status="cancelled", cancelled_date="2020-09-10")
    s.import_scenario(
        build(
            "2020-09-15",
            subs=[sub],
            lines=[psa_line("L1", 4, sub="S1")],
            synced_keys=[synced("S1:prorate:2020-01-01")],
            settings={"invoiced_through": "2020-11-30"},
        )
    )
    return s


def test_acknowledge_credit_due_with_who_when_why_then_undo() -> None:
    store = credit_store()
    plan = actions.current_plan(store)
    [credit] = [f for f in plan.findings if f.code == "credit_due"]
    with pytest.raises(actions.ActionError, match="Say why"):
        actions.acknowledge(store, finding_key(credit), "  ", plan=plan)
    before = plan_cache.store_revision(store)
    actions.acknowledge(store, finding_key(credit), "credit issued CN-1042", plan=plan, user="ann")
    [ack] = actions.acknowledgements(store).values()
    assert (ack.code, ack.by, ack.reason) == ("credit_due", "ann", "credit issued CN-1042")
    # the console shows it in the finding's row: a saved state from before is not current
    assert before is not None and plan_cache.store_revision(store) == before + 1
    with pytest.raises(actions.ActionError, match="already acknowledged"):
        actions.acknowledge(store, finding_key(credit), "again", plan=plan)
    assert actions.undo(store).action == "acknowledge"
    assert actions.acknowledgements(store) == {}
    assert plan_cache.store_revision(store) == before + 2
    store.close()


def test_an_error_is_fixed_not_acknowledged(store: Store) -> None:
    actions.unmap_company(store, "acme")
    plan = actions.current_plan(store, AS_OF)
    [unmapped] = [
        f
        for f in plan.findings
        if f.code == "company_not_mapped" and f.subject["vendor_company_id"] == "acme"
    ]
    with pytest.raises(actions.ActionError, match="is an error: it is fixed, not acknowledged"):
        actions.acknowledge(store, finding_key(unmapped), "fine", plan=plan)


# --- create new vs update (seed 001) ----------------------------------------------------------------


def test_create_new_instead_of_update_and_back(store: Store) -> None:
    plan = actions.current_plan(store, AS_OF)
    assert next(x for x in plan.lines if x.key == "S1:recurring").action == "update"
    assert actions.toggle_create_new(store, "S1:recurring", plan=plan, user="ann") is True
    plan = actions.current_plan(store, AS_OF)
    assert next(x for x in plan.lines if x.key == "S1:recurring").action == "create"
    assert actions.toggle_create_new(store, "S1:recurring", plan=plan) is False
    plan = actions.current_plan(store, AS_OF)
    assert next(x for x in plan.lines if x.key == "S1:recurring").action == "update"
    with pytest.raises(actions.ActionError, match="applies to a recurring line"):
        actions.toggle_create_new(store, "S1:prorate:2020-08-05", plan=plan)


# --- import a vendor company into the PSA (company_not_mapped) --------------------------------------


def halo_sandbox() -> tuple[HaloSandbox, HaloConnector]:
    world = Scenario.model_validate(
        {
            "as_of": "2020-09-20",
            "settings": {"psa": "halopsa"},
            "psa": {"companies": [{"id": "19", "name": "Acme Dental PC"}]},
        }
    )
    sandbox = HaloSandbox.from_scenario(world)

    async def no_sleep(_: float) -> None:
        return None

    connector = HaloConnector(
        sandbox.base_url,
        sandbox.client_id,
        sandbox.client_secret,
        transport=httpx.MockTransport(sandbox.handle),
        sleep=no_sleep,
    )
    return sandbox, connector


async def test_import_company_creates_it_in_the_psa_and_maps_it(store: Store) -> None:
    sandbox, psa = halo_sandbox()
    created = await actions.import_company(store, psa, "new", user="ann")
    assert sandbox.clients[int(created.id)]["name"] == "Gotham Clinic"
    assert ("new", created.id) in {(m.vendor_id, m.psa_id) for m in store.snapshot(AS_OF).mappings.companies}
    plan = actions.current_plan(store, AS_OF)
    assert not [f for f in plan.findings if f.subject.get("vendor_company_id") == "new"]
    requested, imported = (e for e in events(store) if e.action.startswith("import_company"))
    assert (requested.action, imported.action, imported.user) == (
        "import_company.requested",
        "import_company",
        "ann",
    )
    with pytest.raises(actions.ActionError, match="already mapped"):
        await actions.import_company(store, psa, "new")
    assert len(sandbox.clients) == 2  # nothing sent twice
    await psa.aclose()


async def test_import_refuses_a_name_the_psa_has(store: Store) -> None:
    sandbox, psa = halo_sandbox()
    with store.session() as s, s.begin():
        s.add(t.PsaCompanyRow(id="PG", name="GOTHAM  clinic"))
    with pytest.raises(actions.ActionError, match=r"already has GOTHAM  clinic \(PG\); map to it \(m\)"):
        await actions.import_company(store, psa, "new")
    assert len(sandbox.clients) == 1
    await psa.aclose()


async def test_import_after_a_lost_response_finds_the_company_instead_of_creating_twice(store: Store) -> None:
    sandbox, psa = halo_sandbox()
    await psa.companies()  # signed in: the next request is the create
    sandbox.faults.push(Fault.LOST_RESPONSE)
    created = await actions.import_company(store, psa, "new")
    assert sandbox.faults.injected  # the create's answer was lost after the PSA applied it
    names = [c["name"] for c in sandbox.clients.values()]
    assert names.count("Gotham Clinic") == 1
    assert ("new", created.id) in {(m.vendor_id, m.psa_id) for m in store.snapshot(AS_OF).mappings.companies}
    await psa.aclose()


# --- create the product in the PSA (product_not_bound) ----------------------------------------------


def test_the_wizard_fields_are_checked() -> None:
    spec = actions.new_product_spec("  Backup   GB ", " BK-GB ", "$1,200.50", "0.5", taxable=True)
    assert (spec.name, spec.sku, str(spec.unit_price), str(spec.unit_cost), spec.taxable) == (
        "Backup GB",
        "BK-GB",
        "1200.50",
        "0.50",
        True,
    )
    with pytest.raises(actions.ActionError, match="needs a name"):
        actions.new_product_spec(" ", "", "1", "1")
    with pytest.raises(actions.ActionError, match=r"The price '1.005' must be 0 or more, with at most 2"):
        actions.new_product_spec("X", "", "1.005", "1")
    with pytest.raises(actions.ActionError, match=r"The cost 'abc' is not an amount"):
        actions.new_product_spec("X", "", "1", "abc")


async def test_create_product_in_the_psa_binds_it_and_clears_the_finding(store: Store) -> None:
    sandbox, psa = halo_sandbox()
    with store.session() as s, s.begin():
        s.add(t.SubscriptionRow(id="S9", company_id="acme", product_id="bk", start_date=date(2020, 1, 1)))
    spec = actions.new_product_spec("Backup per GB", "BK-GB", "0.12", "0.05")
    created = await actions.create_product(store, psa, "bk", spec, user="ann")
    assert sandbox.items[int(created.id)]["name"] == "Backup per GB"
    assert binding(store, "bk") == (created.id, False)
    kinds = [e.action for e in events(store)]
    assert kinds[-3:] == ["create_product.requested", "create_product", "bind_product"]
    with pytest.raises(actions.ActionError, match="already has Backup per GB with SKU BK-GB; bind to it"):
        await actions.create_product(store, psa, "seat", spec)
    await psa.aclose()


async def test_create_product_where_the_connector_cannot_says_so(store: Store) -> None:
    class NoCatalogue:
        name = "connectwise"

    spec = actions.new_product_spec("Backup per GB", "BK-GB", "0.12", "0.05")
    with pytest.raises(
        actions.ActionError, match="Creating products in connectwise is not supported here yet"
    ):
        await actions.create_product(store, NoCatalogue(), "bk", spec)


async def test_create_product_in_connectwise_goes_to_the_named_subcategory(store: Store) -> None:
    from engine.connectors.connectwise import ConnectWiseConnector
    from engine.sandbox.connectwise import ConnectWiseSandbox

    sandbox = ConnectWiseSandbox.from_scenario(Scenario.model_validate({"as_of": "2020-09-20"}))

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
    with pytest.raises(
        actions.ActionError, match=r"refused to create Backup per GB: .*say which subcategory"
    ):
        await actions.create_product(
            store, psa, "bk", actions.new_product_spec("Backup per GB", "BK-GB", "1", "0")
        )
    assert not sandbox.catalog
    spec = actions.new_product_spec("Backup per GB", "BK-GB", "0.12", "0.05", category=" backup ")
    created = await actions.create_product(store, psa, "bk", spec)
    assert sandbox.catalog[int(created.id)]["subcategory"]["name"] == "Backup"
    assert binding(store, "bk") == (created.id, False)
    await psa.aclose()


async def test_undoing_an_import_unmaps_and_leaves_the_psa_company(store: Store) -> None:
    sandbox, psa = halo_sandbox()
    created = await actions.import_company(store, psa, "new")
    assert actions.undo(store).action == "import_company"
    assert "new" not in {m.vendor_id for m in store.snapshot(AS_OF).mappings.companies}
    assert int(created.id) in sandbox.clients  # the PSA keeps it; it can be mapped again with m
    actions.map_company(store, "new", created.id)
    await psa.aclose()
