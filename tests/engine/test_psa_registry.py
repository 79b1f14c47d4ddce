"""engine/psa.py is the one place that says what a PSA is and can do: held equal to the connector
classes, the configuration sections and the secrets table it replaces."""

from __future__ import annotations

import pytest

from engine.connectors.autotask import CHARGE_KEY_LIMIT, SERVICE_KEY_LIMIT, AutotaskConnector
from engine.connectors.connectwise import SERIAL_MAX, SHORT_DESCRIPTION_MAX, ConnectWiseConnector
from engine.connectors.halopsa import KEY_MAX, HaloConnector
from engine.psa import PSA_NAMES, PSAS, Capability, display_name, psa_spec
from engine.settings import SECRETS, PsaConfig

CONNECTORS = {"connectwise": ConnectWiseConnector, "halopsa": HaloConnector, "autotask": AutotaskConnector}


def test_every_psa_has_one_entry_named_as_its_connector() -> None:
    assert set(PSAS) == set(PSA_NAMES) == set(CONNECTORS)
    for name, connector in CONNECTORS.items():
        assert connector.name == name == PSAS[name].name


@pytest.mark.parametrize("name", PSA_NAMES)
def test_a_declared_capability_is_what_the_connector_does(name: str) -> None:
    connector = CONNECTORS[name]
    assert psa_spec(name).can(Capability.DIGEST_KEYS) == callable(getattr(connector, "remember_keys", None))
    assert psa_spec(name).can(Capability.INVOICED_LINES) == callable(
        getattr(connector, "invoiced_lines", None)
    )


def test_the_limits_are_the_connectors_field_limits() -> None:
    assert PSAS["connectwise"].limits.key == SERIAL_MAX == 50
    assert PSAS["connectwise"].limits.description == SHORT_DESCRIPTION_MAX == 50
    assert PSAS["halopsa"].limits.key == KEY_MAX
    assert PSAS["autotask"].limits.key == min(SERVICE_KEY_LIMIT, CHARGE_KEY_LIMIT) == 50
    # RULES.md §1's cuts, as engine/rules/context.py had them
    assert {n: s.limits.description for n, s in PSAS.items()} == {
        "connectwise": 50,
        "halopsa": 255,
        "autotask": 200,
    }


@pytest.mark.parametrize("name", PSA_NAMES)
def test_auth_fields_are_the_settings_section_and_the_secret_is_the_login_table(name: str) -> None:
    spec = psa_spec(name)
    section = PsaConfig.model_fields[name].annotation
    fields = set(next(a for a in section.__args__ if a is not type(None)).model_fields)  # type: ignore[union-attr]
    assert set(spec.auth_fields) <= fields
    assert SECRETS[name].env == spec.secret_env
    assert SECRETS[name].title == spec.display_name == display_name(name)
    assert SECRETS[name].what == spec.secret


def test_an_unknown_psa_is_refused_by_name_and_a_title_falls_back() -> None:
    with pytest.raises(ValueError, match=r"unknown PSA 'kaseya' \(one of connectwise, halopsa, autotask\)"):
        psa_spec("kaseya")
    assert display_name("kaseya") == "PSA"
