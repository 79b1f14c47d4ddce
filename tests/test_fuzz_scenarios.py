"""Fuzz `trueup plan` (issue 11, "Done when"): Hypothesis builds scenarios over the format (from the
contract examples and from scratch), applies the issue's mutation classes, and runs the real command
in-process. Every case must end with exit 0 and a valid plan, or exit 2 naming the path of what is
wrong — never a traceback, a hang, or more than 1 GB.

`TRUEUP_FUZZ_CASES` sets the number of cases (CI: 400). The figures of the run (cases, exits, time)
are printed at the end of the test (`-s` shows them)."""

from __future__ import annotations

import copy
import json
import os
import re
import resource
import string
import time
from collections import Counter
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.plan import Plan
from tui.cli import main

EXAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "contract" / "examples"
BASES = (
    sorted(p for p in EXAMPLES.glob("*.json") if not p.name.endswith(".plan.json"))
    if EXAMPLES.is_dir()
    else []
)
CASES = int(os.environ.get("TRUEUP_FUZZ_CASES", "400"))
CASE_SECONDS = 10.0  # a case slower than this is a hang
MEMORY_LIMIT = 1 << 30


def resident() -> int:
    """This process's resident memory now, in bytes (Linux /proc; ru_maxrss where it is absent)."""
    try:
        pages = int(open("/proc/self/statm").read().split()[1])
        return pages * resource.getpagesize()
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# --- the mutation classes: values put in place of a leaf ----------------------------------

HOSTILE_VALUES: list[Any] = [
    "1e400",
    Decimal("1E+400"),
    "1E+999999",
    Decimal("1E+999999"),
    "NaN",
    Decimal("NaN"),
    Decimal("-Infinity"),
    "1" * 39,
    "9" * 60,
    10**45,
    "-1",
    "-5",
    Decimal("-0.01"),
    "25.005",
    "0.001",
    "٣",
    "1_000",
    " 25 ",
    "",
    "9999-12-31",
    "1899-12-31",
    "0001-01-01",
    0,
    1e308,
    "2024-02-30",
    "2024-13",
    "20/09/2020",
    "Esc \x1b]0;PWNED\x07 \x1b[2J",
    "nul\x00",
    "c1\x9b31m",
    "bidi\u202eevil",
    "lone\ud800",
    "x" * 5000,
    True,
    None,
    [],
    {},
    {"nested": [1, 2]},
    "ghost-id",
    3.5,
    -7,
    # bare literals in the written text (JSON numbers, NaN/Infinity; YAML plain scalars)
    "@@RAW:1e400@@",
    "@@RAW:1E+999999@@",
    "@@RAW:NaN@@",
    "@@RAW:-Infinity@@",
    "@@RAW:" + "7" * 39 + "@@",
    "@@RAW:25.005@@",
    "@@RAW:-3@@",
]
UNKNOWN_ID = "no-such-id"


def leaves(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    if isinstance(node, dict):
        for k, v in node.items():
            out += leaves(v, (*path, k)) if isinstance(v, (dict, list)) and v else [(*path, k)]
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += leaves(v, (*path, i)) if isinstance(v, (dict, list)) and v else [(*path, i)]
    return out


def containers(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path] if isinstance(node, (dict, list)) else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += containers(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += containers(v, (*path, i))
    return out


def at(node: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        node = node[part]
    return node


def mutate(data: dict[str, Any], draw: Any) -> str:
    """One mutation in place; returns its class (for the figures)."""
    kind = draw(
        st.sampled_from(
            [
                "value",
                "value",
                "value",
                "id",
                "delete",
                "unknown_key",
                "duplicate",
                "drop_entity",
                "deep",
                "type",
            ]
        )
    )
    spots = leaves(data)
    if not spots:
        return "none"
    path = draw(st.sampled_from(spots))
    parent, key = at(data, path[:-1]), path[-1]
    if kind == "value":
        parent[key] = copy.deepcopy(draw(st.sampled_from(HOSTILE_VALUES)))  # never one shared (mutable) value
    elif kind == "id":
        id_spots = [p for p in spots if isinstance(p[-1], str) and (p[-1] == "id" or p[-1].endswith("_id"))]
        if id_spots:
            p = draw(st.sampled_from(id_spots))
            at(data, p[:-1])[p[-1]] = UNKNOWN_ID  # a dangling reference (or a renamed entity)
    elif kind == "delete" and isinstance(parent, dict):
        del parent[key]
    elif kind == "unknown_key" and isinstance(parent, dict):
        parent["colour"] = "red"
    elif kind == "duplicate":
        lists = [p for p in containers(data) if isinstance(at(data, p), list) and at(data, p)]
        if lists:
            items = at(data, draw(st.sampled_from(lists)))
            items.append(copy.deepcopy(items[0]))
    elif kind == "drop_entity":
        lists = [p for p in containers(data) if isinstance(at(data, p), list) and at(data, p)]
        if lists:
            items = at(data, draw(st.sampled_from(lists)))
            items.pop(draw(st.integers(0, len(items) - 1)))
    elif kind == "deep":  # a marker, nested in the text once written (`nest`)
        parent[key] = f"@@DEEP{draw(st.sampled_from([40, 1000, 5000]))}@@"
    elif kind == "type":
        parent[key] = draw(st.sampled_from([[parent[key]], {"value": parent[key]}, str(parent[key]) + "!"]))
    return kind


_DEEP = re.compile(r"[\"']?@@DEEP(\d+)@@[\"']?")


_RAW = re.compile(r"[\"']?@@RAW:([^@]+)@@[\"']?")


def nest(text: str) -> str:
    """Each deep-nesting marker becomes that many nested lists (JSON and YAML flow syntax alike),
    each raw marker its bare literal."""
    text = _DEEP.sub(lambda m: "[" * int(m.group(1)) + '"x"' + "]" * int(m.group(1)), text)
    return _RAW.sub(lambda m: m.group(1), text)


# --- scenarios over the format -----------------------------------------------------------------

ID = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=5)
DAY = st.dates(min_value=date(2018, 1, 1), max_value=date(2027, 12, 31))
MONEY = st.decimals(min_value=0, max_value=500, places=2).map(str)
QUANTITY = st.integers(0, 300).map(str)
KIND = st.sampled_from(["seat", "seat", "endpoint_usage", "usage_summary", "quota"])


@st.composite
def generated(draw: Any) -> dict[str, Any]:
    """A scenario built from scratch: every reference resolved, values of any plausible shape (the
    rules must cope with all of them: history before the start, cancellations, annual terms…)."""
    as_of = draw(DAY)
    n_companies, n_products = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    companies = [
        {"id": f"c{i}", "name": draw(st.text(min_size=1, max_size=12).filter(str.isprintable))}
        for i in range(n_companies)
    ]
    products = [
        {"id": f"p{i}", "sku": draw(st.none() | ID), "name": f"Product {i}", "kind": draw(KIND)}
        for i in range(n_products)
    ]
    for p in products:
        if p["kind"] == "endpoint_usage":
            p["sub_products"] = draw(
                st.lists(st.sampled_from(["Business", "Pro", "Advanced"]), max_size=2, unique=True)
            )
    subs, usage, lines = [], [], []
    for s in range(draw(st.integers(0, 5))):
        sid = f"s{s}"
        start = draw(DAY)
        history, quantity = [], 0
        for h in range(draw(st.integers(1, 4))):
            quantity = draw(st.integers(0, 300))
            history.append(
                {
                    "id": f"{sid}-h{h}",
                    "action": "initial"
                    if h == 0
                    else draw(st.sampled_from(["increase", "decrease", "cancel"])),
                    "quantity": str(quantity),
                    "effective_date": str(draw(DAY)),
                }
            )
        cancelled = draw(st.booleans()) and draw(st.booleans())
        subs.append(
            {
                "id": sid,
                "company_id": f"c{draw(st.integers(0, n_companies - 1))}",
                "product_id": f"p{draw(st.integers(0, n_products - 1))}",
                "billing_term": draw(st.sampled_from(["monthly", "monthly", "annual"])),
                "start_date": str(start),
                "end_date": draw(st.none() | DAY.map(str)),
                "unit_price": draw(MONEY),
                "unit_cost": draw(MONEY),
                "status": "cancelled" if cancelled else "active",
                "cancelled_date": str(draw(DAY)) if cancelled else None,
                "history": history,
            }
        )
        for period in draw(st.lists(DAY.map(lambda d: d.strftime("%Y-%m")), max_size=2, unique=True)):
            usage.append(
                {
                    "subscription_id": sid,
                    "period": period,
                    "quantity": draw(QUANTITY),
                    "unit_price": draw(MONEY),
                    "unit_cost": draw(MONEY),
                    "sub_product": draw(st.none() | st.sampled_from(["Business", "Pro"])),
                    "charges": draw(st.none() | MONEY),
                    "partner_total": draw(st.none() | MONEY),
                }
            )
        if draw(st.booleans()):
            lines.append(
                {
                    "id": f"L{s}",
                    "agreement_id": f"A{draw(st.integers(0, n_companies - 1))}",
                    "product_id": f"X{draw(st.integers(0, n_products - 1))}",
                    "kind": draw(st.sampled_from(["recurring", "recurring", "one_time"])),
                    "quantity": draw(QUANTITY),
                    "unit_price": draw(MONEY),
                    "unit_cost": draw(MONEY),
                    "effective_date": str(draw(DAY)),
                    "description": "",
                    "metered": draw(st.booleans()),
                    "source": {
                        "subscription_id": sid,
                        "sub_product": None,
                        "key": draw(st.none() | st.just(f"{sid}:recurring")),
                    },
                }
            )
    mapped = draw(st.lists(st.integers(0, n_companies - 1), unique=True, max_size=n_companies))
    return {
        "as_of": str(as_of),
        "settings": {
            "invoiced_through": draw(st.none() | DAY.map(str)),
            "threshold_prorates": draw(st.booleans()),
            "prorate_counts_change_day": draw(st.booleans()),
            "psa": draw(st.sampled_from(["connectwise", "halopsa", "autotask"])),
        },
        "vendor": {"companies": companies, "products": products, "subscriptions": subs, "usage": usage},
        "psa": {
            "companies": [{"id": f"C{i}", "name": c["name"]} for i, c in enumerate(companies)],
            "products": [{"id": f"X{i}", "name": f"PSA product {i}", "sku": None} for i in range(n_products)],
            "agreements": [
                {
                    "id": f"A{i}",
                    "company_id": f"C{i}",
                    "name": f"Agreement {i}",
                    "start_date": str(draw(DAY)),
                    "end_date": draw(st.none() | DAY.map(str)),
                    "billing_period": draw(st.sampled_from(["monthly", "annual"])),
                }
                for i in range(n_companies)
            ],
            "lines": lines,
        },
        "mappings": {
            "companies": [{"vendor_id": f"c{i}", "psa_id": f"C{i}"} for i in mapped],
            "products": [
                {
                    "vendor_product_id": f"p{i}",
                    "psa_product_id": f"X{i}",
                    "free": draw(st.booleans()) and draw(st.booleans()),
                }
                for i in range(n_products)
                if draw(st.booleans()) or i == 0
            ],
            "agreements": [],
        },
        "synced": [],
        "ignored": [],
    }


def base_scenarios() -> Any:
    examples = [json.loads(p.read_text(encoding="utf-8")) for p in BASES]
    return (st.sampled_from(examples).map(copy.deepcopy) if examples else st.nothing()) | generated()


# --- what every case must end in -------------------------------------------------------------------

PROBLEM = re.compile(
    r"^  (?:\(top level\)|line \d+, column \d+|not valid YAML|too large|not a regular file|file not found"
    r"|cannot be read|not a valid number"
    r"|[a-z_]+(?:\[\d+\])*(?:\.[a-z_0-9]+(?:\[\d+\])*)*(?:…)?): "
)


def check(result: Any, path: Path, stats: Counter[str]) -> None:
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    if result.exit_code == 0:
        plan = Plan.model_validate_json(result.stdout)  # a valid plan
        assert plan.totals.price == sum((line.total_price for line in plan.lines), Decimal(0))
        stats["exit 0"] += 1
        return
    assert result.exit_code == 2, f"exit {result.exit_code}: {result.stderr[-2000:]}"
    head, _, rest = result.stderr.partition("\n")
    assert head == f"trueup: {path}: invalid scenario", result.stderr[:500]
    problems = [line for line in rest.splitlines() if line and not line.startswith("  … and")]
    assert problems and all(PROBLEM.match(line) for line in problems), result.stderr[:2000]
    stats["exit 2"] += 1


@pytest.mark.skipif(not BASES, reason=f"shared contract examples absent ({EXAMPLES})")
def test_fuzzed_scenarios_exit_0_with_a_plan_or_2_with_a_path(tmp_path: Path) -> None:
    stats: Counter[str] = Counter()
    runner = CliRunner()
    slowest = [0.0]
    started = time.monotonic()

    @settings(
        max_examples=CASES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )
    @given(base=base_scenarios(), data=st.data())
    def case(base: dict[str, Any], data: Any) -> None:
        kinds = [mutate(base, data.draw) for _ in range(data.draw(st.integers(0, 3)))]
        stats.update(f"mutation {k}" for k in kinds)
        as_yaml = data.draw(st.integers(0, 4)) == 0
        path = tmp_path / ("scenario.yaml" if as_yaml else "scenario.json")
        plain = json.loads(json.dumps(base, default=str))  # Decimal values written as JSON numbers' text
        text = (
            yaml.safe_dump(plain, allow_unicode=True, width=10**6)
            if as_yaml
            else json.dumps(base, default=str, ensure_ascii=data.draw(st.booleans()))
        )
        path.write_text(nest(text), encoding="utf-8", errors="surrogatepass")
        began = time.monotonic()
        result = runner.invoke(main, ["plan", str(path), "--json"], catch_exceptions=True)
        took = time.monotonic() - began
        slowest[0] = max(slowest[0], took)
        grown[0] = max(grown[0], resident() - baseline)
        assert took < CASE_SECONDS, f"{took:.1f} s: a hang"
        assert grown[0] < MEMORY_LIMIT, f"the process grew {grown[0] / 2**20:.0f} MiB on one case"
        stats["cases"] += 1
        stats["yaml" if path.suffix == ".yaml" else "json"] += 1
        check(result, path, stats)

    runner.invoke(main, ["plan", str(BASES[0]), "--json"])  # imports done before the clock starts
    # Memory is what the cases add to this process (an xdist worker's peak RSS also holds the tests
    # that ran before in it), read after each case.
    baseline = resident()
    grown = [0]
    started = time.monotonic()
    case()
    elapsed = time.monotonic() - started
    print(
        f"\nfuzz: {stats['cases']} cases in {elapsed:.1f} s (slowest {slowest[0]:.2f} s), "
        f"exit 0: {stats['exit 0']}, exit 2: {stats['exit 2']}, other: 0, growth at most {grown[0] / 2**20:.0f} MiB; "
        + ", ".join(f"{k} {v}" for k, v in sorted(stats.items()) if k.startswith("mutation"))
    )
    assert stats["cases"] >= CASES
    assert stats["exit 0"] >= CASES // 10 and stats["exit 2"] >= CASES // 4  # both outcomes exercised
    assert grown[0] < MEMORY_LIMIT
