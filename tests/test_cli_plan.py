"""`trueup plan` at 80 columns (issue 13: the table was 123 columns wide and wrapped unreadably),
`trueup plan --csv`, and CLI errors as one sentence with exit status 2."""

from __future__ import annotations

import csv
import io
import json
import re
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.sandbox.demo import build_demo_scenario
from engine.scenario_io import dump_scenario
from tui.cli import main

EXAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "contract" / "examples"
TWO_PRORATES = EXAMPLES / "seed001_update_addition_two_prorates.json"
needs_examples = pytest.mark.skipif(
    not EXAMPLES.is_dir(), reason=f"shared contract examples absent ({EXAMPLES})"
)


def plan(*args: str, columns: int = 80) -> object:
    return CliRunner().invoke(main, ["plan", *args], env={"COLUMNS": str(columns)})


@pytest.fixture(scope="module")
def demo_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "demo.json"
    path.write_text(dump_scenario(build_demo_scenario()))
    return path


def scenario_files(demo: Path) -> list[Path]:
    examples = sorted(p for p in EXAMPLES.glob("*.json") if not p.name.endswith(".plan.json"))
    return [*examples, demo]


def test_every_row_fits_80_columns_for_every_example_and_the_demo(demo_file: Path) -> None:
    for path in scenario_files(demo_file):
        result = plan(str(path))
        assert result.exit_code == 0, result.output
        too_long = [row for row in result.stdout.splitlines() if len(row) > 80]
        assert not too_long, (path.name, too_long[:3])


@needs_examples
def test_at_80_columns_the_money_the_quantity_change_and_the_action_stay() -> None:
    out = plan(str(TWO_PRORATES)).stdout
    header = next(row for row in out.splitlines() if row.startswith("Line"))
    assert header.split() == ["Line", "Action", "Qty", "Unit", "price", "Total"]
    recurring = next(row for row in out.splitlines() if row.startswith("500:recurring"))
    assert recurring.split() == ["500:recurring", "update", "270", "→", "283", "$6.00", "$1,698.00"]
    # the description is wrapped under its key, not cut off
    text = " ".join(row.strip() for row in out.splitlines())
    assert "Pax8 - Microsoft Office 365 Business Essentials - Prorated for 08/05/2020-08/31/2020" in text
    assert "Not shown at 80 columns: kind, effective, end" in text
    assert "4 line(s) · total price $1,839.07 · total cost $1,532.54" in out


@needs_examples
def test_a_wide_terminal_shows_every_column_and_drops_nothing() -> None:
    out = plan(str(TWO_PRORATES), columns=200).stdout
    header = next(row for row in out.splitlines() if row.startswith("Line"))
    assert header.split() == ["Line", "Kind", "Action", "Qty", "Unit", "price", "Total", "Effective", "End"]
    assert "Not shown" not in out


def test_csv_is_the_whole_plan_one_row_per_line_with_plain_decimals(demo_file: Path) -> None:
    as_json = json.loads(plan(str(demo_file), "--json").stdout)
    result = plan(str(demo_file), "--csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["key"] for r in rows] == [line["key"] for line in as_json["lines"]]
    assert len(rows) > 100
    plain = re.compile(r"-?[0-9]+(\.[0-9]+)?")  # no currency sign, no thousands separator, no exponent
    for row, line in zip(rows, as_json["lines"], strict=True):
        for name in ("unit_price", "unit_cost", "total_price", "total_cost", "quantity"):
            assert plain.fullmatch(row[name]), (row["key"], name, row[name])
            assert Decimal(row[name]) == Decimal(line[name]), (row["key"], name)
        assert re.fullmatch(r"-?[0-9]+\.[0-9]{2}", row["total_price"]), row["key"]  # totals are cents
    assert sum(Decimal(r["total_price"]) for r in rows) == Decimal(as_json["totals"]["price"])
    assert sum(Decimal(r["total_cost"]) for r in rows) == Decimal(as_json["totals"]["cost"])
    update = next(r for r in rows if r["action"] == "update" and r["previous_quantity"])
    assert Decimal(update["previous_quantity"]) != Decimal(update["quantity"])


def test_csv_and_json_together_is_bad_input_in_one_sentence(demo_file: Path) -> None:
    result = plan(str(demo_file), "--csv", "--json")
    assert result.exit_code == 2
    assert result.stderr.strip() == "trueup: choose one of --json and --csv, not both."


def test_export_to_a_missing_directory_is_one_sentence_with_exit_2(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    result = CliRunner().invoke(main, ["--db", url, "export-scenario", "-o", "/nonexistent/dir/x.json"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output
    assert lines[0].startswith("trueup: cannot write /nonexistent/dir/x.json")


def test_plan_price_policy_flag_chooses_what_a_vendor_price_change_proposes(tmp_path: Path) -> None:
    from engine.scenario import Scenario

    data = {
        "as_of": "2026-11-21",
        "vendor": {
            "companies": [{"id": "acme", "name": "Tran Law Group"}],
            "products": [{"id": "seat", "name": "Business Premium", "kind": "seat"}],
            "subscriptions": [
                {
                    "id": "S1",
                    "company_id": "acme",
                    "product_id": "seat",
                    "start_date": "2026-01-05",
                    "unit_price": "23.10",
                    "unit_cost": "19.64",
                    "history": [
                        {"id": "h1", "action": "initial", "quantity": "10", "effective_date": "2026-01-05"}
                    ],
                }
            ],
        },
        "psa": {
            "companies": [{"id": "P1", "name": "Tran Law Group"}],
            "products": [{"id": "PP1", "name": "Business Premium"}],
            "agreements": [{"id": "AG1", "company_id": "P1", "name": "Monthly", "start_date": "2015-01-01"}],
            "lines": [
                {
                    "id": "L1",
                    "agreement_id": "AG1",
                    "product_id": "PP1",
                    "quantity": "10",
                    "unit_price": "22.00",
                    "unit_cost": "18.70",
                    "effective_date": "2019-02-01",
                    "source": {"subscription_id": "S1", "key": "S1:recurring"},
                }
            ],
        },
        "mappings": {
            "companies": [{"vendor_id": "acme", "psa_id": "P1"}],
            "products": [{"vendor_product_id": "seat", "psa_product_id": "PP1"}],
        },
        "synced": [{"key": "S1:prorate:2026-01-05", "synced_on": "2026-01-05"}],
    }
    path = tmp_path / "price.json"
    path.write_text(dump_scenario(Scenario.model_validate(data)))
    prices = {}
    for policy in (None, "keep_margin", "keep_and_warn"):
        result = plan(str(path), "--json", *(["--price-policy", policy] if policy else []))
        assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
        body = json.loads(result.output)  # type: ignore[attr-defined]
        assert [f["code"] for f in body["findings"]] == ["vendor_price_changed"]
        prices[policy] = [(line["key"], line["unit_price"]) for line in body["lines"]]
    assert prices == {
        None: [("S1:price", "23.10")],
        "keep_margin": [("S1:price", "23.11")],
        "keep_and_warn": [],
    }
    bad = plan(str(path), "--price-policy", "sometimes")
    assert bad.exit_code == 2 and "sometimes" in bad.output  # type: ignore[attr-defined]
