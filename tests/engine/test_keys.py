"""engine/keys.py owns the plan key: every key the rules wrote before it existed (the contract's
expected plans, the demo MSP's plan) reads back the same, through both readings the connectors
used to have (ConnectWise's pattern, Autotask's partition), and formats back to the same text."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

import pytest

from engine.keys import KINDS, PlanKey, change_set_key, kind_of, line_source, subject_of
from engine.reconcile import reconcile
from engine.sandbox.demo import build_demo_scenario

EXAMPLES = Path(__file__).resolve().parents[2] / ".." / "shared" / "contract" / "examples"

# The two readings the connectors had before engine/keys.py, kept here as the pinned behaviour.
_CW_KEY = re.compile(
    r"^(?P<sub>[^:]+)"
    r":(?P<kind>recurring|cancel|prorate|extra_months|arrears|usage_summary|usage)"
    r"(?::(?P<rest>.+))?$",
    re.DOTALL,
)


def _autotask_reading(key: str) -> tuple[str | None, str | None]:
    subscription, _, rest = key.partition(":")
    kind, _, arg = rest.partition(":")
    return subscription or None, (arg or None) if kind == "arrears" else None


def _stored_keys() -> list[str]:
    keys: set[str] = set()
    for path in sorted(EXAMPLES.glob("*.plan.json")):
        keys |= {line["key"] for line in json.loads(path.read_text())["lines"]}
    plan = reconcile(build_demo_scenario())
    keys |= {line.key for line in [*plan.lines, *plan.ignored_lines]}
    return sorted(keys)


STORED = _stored_keys()


def test_there_are_keys_of_every_kind_to_check() -> None:
    # `price` (engine.rules.leaks) only updates a line stored under its `recurring` key: no PSA
    # field ever held one, so no connector had a reading of it to pin.
    assert {kind_of(k) for k in STORED} == set(KINDS) - {"price"}
    assert len(STORED) > 100


def test_a_price_key_formats_and_parses_like_the_recurring_one() -> None:
    key = PlanKey.price("sub-9")
    assert key.format() == "sub-9:price" and str(key) == "sub-9:price"
    assert PlanKey.parse("sub-9:price") == key
    assert kind_of("sub-9:price") == "price" and subject_of("sub-9:price") == "sub-9"
    assert key.sub_product is None
    # not an arrears label or a usage key read as one
    assert PlanKey.parse("sub-9:prices") is None
    assert kind_of("sub-9:price:2026-11") == "price"


@pytest.mark.parametrize("key", STORED)
def test_a_stored_key_reads_as_both_connectors_read_it_and_formats_back(key: str) -> None:
    parsed = PlanKey.parse(key)
    assert parsed is not None
    cw = _CW_KEY.match(key)
    assert cw is not None
    assert (parsed.subject, parsed.kind, parsed.argument) == (cw["sub"], cw["kind"], cw["rest"])
    source = line_source(key)
    assert source is not None
    assert (source.subscription_id, source.sub_product) == _autotask_reading(key)
    assert source.key == key
    assert parsed.format() == str(parsed) == key
    assert subject_of(key) == parsed.subject


def test_the_rules_keys_are_built_by_their_kind() -> None:
    assert PlanKey.recurring("777").format() == "777:recurring"
    assert PlanKey.cancel("777").format() == "777:cancel"
    assert PlanKey.prorate("777", date(2021, 1, 17)).format() == "777:prorate:2021-01-17"
    assert PlanKey.prorate("777", "2021-01-17") == PlanKey.prorate("777", date(2021, 1, 17))
    assert PlanKey.extra_months("500", date(2020, 9, 1)).format() == "500:extra_months:2020-09"
    assert PlanKey.arrears("pp1", "Business").format() == "pp1:arrears:Business"
    assert PlanKey.usage("ws").format() == "ws:usage"
    assert PlanKey.usage_summary("az").format() == "az:usage_summary"
    assert change_set_key("777") == "777:changes"


@pytest.mark.parametrize(
    "text",
    ["777", "777:changes", "777:unknown:x", ":recurring", "777:arrears:", "", "#digest", "~abcdef"],
)
def test_what_is_no_plan_key_is_told_apart(text: str) -> None:
    assert PlanKey.parse(text) is None
    assert kind_of(text) is None
    if text:
        source = line_source(text)
        assert source is not None and source.key == text and source.subscription_id is None


def test_the_longest_kind_wins_and_an_argument_may_hold_colons() -> None:
    assert PlanKey.parse("s:usage_summary") == PlanKey("s", "usage_summary")
    assert PlanKey.parse("s:arrears:a:b") == PlanKey("s", "arrears", "a:b")
    assert PlanKey("s", "arrears", "a:b").sub_product == "a:b"
    assert PlanKey("s", "prorate", "2021-01-17").sub_product is None
    assert subject_of("777") == "777"
