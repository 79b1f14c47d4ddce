"""`product_not_bound` fixed by creating the product in Autotask (issue 13, seed 004's wizard):
`engine.actions.create_product` on the strict Autotask sandbox creates a Service and binds the
vendor product to it; a refusal is one sentence naming the service, and nothing is bound."""

from __future__ import annotations

from datetime import date

import pytest
from builders import COMPANY, build

from engine import actions, audit
from engine.sandbox.autotask import BILLING_CODE_BASE, AutotaskSandbox
from engine.scenario import Scenario
from engine.store import Store

AS_OF = date(2020, 9, 20)


@pytest.fixture
def store() -> Store:
    s = Store.memory()
    s.import_scenario(
        build(
            AS_OF.isoformat(),
            subs=[],
            lines=[],
            companies=[COMPANY],
            products=[{"id": "bk", "name": "Backup", "kind": "quota"}],
            psa_products=[{"id": "700", "name": "Backup GB"}],
        )
    )
    yield s
    s.close()


def autotask() -> AutotaskSandbox:
    world = Scenario.model_validate(
        {
            "as_of": "2020-09-20",
            "settings": {"psa": "autotask"},
            "psa": {
                "companies": [{"id": "19", "name": "Acme Dental PC"}],
                "products": [{"id": "700", "name": "Backup GB", "unit_price": "0.10"}],
            },
        }
    )
    return AutotaskSandbox.from_scenario(world)


def bound(store: Store, product: str) -> str | None:
    for b in store.snapshot(AS_OF).mappings.products:
        if b.vendor_product_id == product:
            return b.psa_product_id
    return None


async def test_create_product_on_autotask_creates_the_service_and_binds_it(store: Store) -> None:
    at = autotask()
    psa = at.connector(service_billing_code_id=BILLING_CODE_BASE + 700)
    spec = actions.new_product_spec("Backup per GB", "BK-GB", "0.12", "0.05")
    created = await actions.create_product(store, psa, "bk", spec, user="ann")
    service = at.tables["Services"][int(created.id)]
    assert (service["name"], str(service["unitPrice"]), str(service["unitCost"])) == (
        "Backup per GB",
        "0.12",
        "0.05",
    )
    assert bound(store, "bk") == created.id
    with store.session() as s:
        kinds = [e.action for e in audit.events(s)]
    assert kinds[-3:] == ["create_product.requested", "create_product", "bind_product"]
    await psa.aclose()


async def test_without_a_billing_code_autotask_is_not_asked_and_nothing_is_bound(store: Store) -> None:
    at = autotask()
    psa = at.connector()
    spec = actions.new_product_spec("Backup per GB", "", "0.12", "0.05")
    with pytest.raises(actions.ActionError, match="autotask refused to create Backup per GB: .*billing code"):
        await actions.create_product(store, psa, "bk", spec)
    assert at.writes == 0 and bound(store, "bk") is None
    await psa.aclose()


async def test_the_sandbox_workspace_creates_autotask_products_through_a_code_the_zone_has(
    store: Store,
) -> None:
    # The console's sandbox connector is built with one of the zone's own billing codes (a Service
    # requires one), so "create in PSA" works on the Autotask sandbox as on a configured zone.
    from engine.workspace import _psa_sandbox

    scenario = Scenario.model_validate(
        {
            "as_of": "2020-09-20",
            "settings": {"psa": "autotask"},
            "psa": {
                "companies": [{"id": "19", "name": "Acme Dental PC"}],
                "products": [{"id": "700", "name": "Backup GB", "unit_price": "0.10"}],
            },
        }
    )
    at, psa = _psa_sandbox("autotask", scenario, None)
    assert psa.service_billing_code_id in at.billing_codes()
    spec = actions.new_product_spec("Backup per GB", "BK-GB", "0.12", "0.05")
    created = await actions.create_product(store, psa, "bk", spec, user="ann")
    assert at.tables["Services"][int(created.id)]["billingCodeID"] == psa.service_billing_code_id
    assert bound(store, "bk") == created.id
    await psa.aclose()


def test_a_configured_zone_names_the_billing_code_for_new_services() -> None:
    from pydantic import ValidationError

    from engine.settings import AutotaskConfig

    config = AutotaskConfig(
        username="api@example.com", integration_code="X", service_billing_code_id=29682801
    )
    assert config.service_billing_code_id == 29682801
    with pytest.raises(ValidationError, match="service_billing_code_id"):
        AutotaskConfig(username="api@example.com", integration_code="X", service_billing_code_id=0)


async def test_the_services_sku_is_what_the_bind_picker_and_a_second_create_match_by() -> None:
    # Issue 13: an Autotask Service carries its SKU in its own `sku` field ([anteris]), read back
    # by products(): the picker's same-SKU pre-select and the duplicate check match by SKU, not
    # by a name or a description marker.
    s = Store.memory()
    s.import_scenario(
        build(
            AS_OF.isoformat(),
            subs=[],
            lines=[],
            companies=[COMPANY],
            products=[
                {"id": "bk", "name": "Backup", "kind": "quota", "sku": "BK-GB"},
                {"id": "bk2", "name": "Cloud backup (renamed)", "kind": "quota", "sku": "bk-gb "},
            ],
            psa_products=[{"id": "700", "name": "Backup GB"}],
        )
    )
    at = autotask()
    psa = at.connector(service_billing_code_id=BILLING_CODE_BASE + 700)
    spec = actions.new_product_spec("Managed backup", "BK-GB", "0.12", "0.05")
    created = await actions.create_product(s, psa, "bk", spec, user="ann")
    assert at.tables["Services"][int(created.id)]["sku"] == "BK-GB"
    assert created.sku == "BK-GB"
    # another vendor product of that SKU (a different name): the picker opens on the new Service
    assert actions.same_sku_product(s, "bk2") == created.id
    with pytest.raises(actions.ActionError, match="already has Managed backup with SKU BK-GB"):
        await actions.create_product(s, psa, "bk2", actions.new_product_spec("Other", "BK-GB", "1", "0"))
    assert len(at.tables["Services"]) == 2  # no second Service was created
    await psa.aclose()
    s.close()
