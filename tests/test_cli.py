"""`trueup plan`, `schema` and `export-scenario` as an operator runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from engine.scenario_io import load_scenario
from engine.store import Store
from tui.cli import main

EXAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "contract" / "examples"
TWO_PRORATES = EXAMPLES / "seed001_update_addition_two_prorates.json"
needs_examples = pytest.mark.skipif(
    not EXAMPLES.is_dir(), reason=f"shared contract examples absent ({EXAMPLES})"
)


def run(*args: str) -> object:
    return CliRunner().invoke(main, list(args), catch_exceptions=True)


def example_data() -> dict:
    return json.loads(TWO_PRORATES.read_text())


def write(tmp_path: Path, data: object, name: str = "scenario.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


@needs_examples
def test_plan_prints_the_lines_and_the_totals() -> None:
    # A wide terminal shows every column (80 columns drop some: tests/test_cli_plan.py).
    result = CliRunner().invoke(main, ["plan", str(TWO_PRORATES)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith("Plan as of 2020-09-20 · invoiced through 2020-09-30")
    assert "4 line(s) · total price $1,839.07 · total cost $1,532.54" in out
    prorate = next(line for line in out.splitlines() if line.startswith("500:prorate:2020-08-05"))
    assert prorate.split() == [
        "500:prorate:2020-08-05",
        "prorate",
        "create",
        "12",
        "$5.03",
        "$60.36",
        "2020-10-01",
        "2020-10-31",
    ]


@needs_examples
def test_plan_json_is_the_contract_plan() -> None:
    result = run("plan", str(TWO_PRORATES), "--json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["totals"] == {"price": "1839.07", "cost": "1532.54", "ignored": 0}
    assert [line["key"] for line in plan["lines"]] == [
        "500:recurring",
        "500:prorate:2020-08-05",
        "500:prorate:2020-08-17",
        "500:extra_months:2020-09",
    ]
    assert plan["lines"][1]["total_price"] == "60.36"


@needs_examples
def test_plan_reads_yaml_too(tmp_path: Path) -> None:
    import yaml

    path = write(tmp_path, yaml.safe_dump(example_data()), "scenario.yaml")
    result = run("plan", str(path), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["totals"]["price"] == "1839.07"


def broken(change) -> dict:  # type: ignore[no-untyped-def]
    data = example_data()
    change(data)
    return data


BAD_SCENARIOS = {
    "bad date": (
        lambda d: (
            d["vendor"]["subscriptions"][0]["history"].__getitem__(1).update(effective_date="2020-02-30")
        ),
        "vendor.subscriptions[0].history[1].effective_date: not a date (expected YYYY-MM-DD)",
    ),
    "bad as_of": (lambda d: d.update(as_of="20/09/2020"), "as_of: not a date (expected YYYY-MM-DD)"),
    "unknown key": (
        lambda d: d["vendor"]["subscriptions"][0].update(colour="red"),
        "vendor.subscriptions[0].colour: unknown key",
    ),
    "non-decimal money": (
        lambda d: d["psa"]["lines"][0].update(unit_price="six dollars"),
        "psa.lines[0].unit_price: not a decimal number",
    ),
}


@needs_examples
@pytest.mark.parametrize("case", list(BAD_SCENARIOS))
def test_a_bad_scenario_exits_2_naming_the_path(tmp_path: Path, case: str) -> None:
    change, message = BAD_SCENARIOS[case]
    path = write(tmp_path, broken(change))
    result = run("plan", str(path))
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)  # a clean exit, not a crash
    assert result.stdout == ""
    assert result.stderr == f"trueup: {path}: invalid scenario\n  {message}\n"


def test_a_missing_file_exits_2(tmp_path: Path) -> None:
    result = run("plan", str(tmp_path / "nope.json"))
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert result.stderr == f"trueup: {tmp_path / 'nope.json'}: invalid scenario\n  file not found\n"


def test_invalid_json_exits_2_with_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, '{"as_of": "2020-09-20",\n "vendor": {,}}')
    result = run("plan", str(path))
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert result.stderr.startswith(f"trueup: {path}: invalid scenario\n  line 2, column 13: not valid JSON")


@needs_examples
def test_the_real_command_prints_no_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, broken(BAD_SCENARIOS["bad date"][0]))
    trueup = Path(sys.executable).with_name("trueup")
    result = subprocess.run([str(trueup), "plan", str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert (
        "vendor.subscriptions[0].history[1].effective_date: not a date (expected YYYY-MM-DD)" in result.stderr
    )


@pytest.mark.parametrize("what", ["scenario", "plan"])
def test_schema_prints_a_valid_json_schema(what: str) -> None:
    result = run("schema", what)
    assert result.exit_code == 0, result.output
    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert {"as_of"} <= set(schema["properties"])
    assert "additionalProperties" in json.dumps(schema)  # unknown keys are refused by the scenario format


@needs_examples
def test_the_schemas_accept_the_contracts_files() -> None:
    scenario_schema = json.loads(run("schema", "scenario").stdout)
    plan_schema = json.loads(run("schema", "plan").stdout)
    jsonschema.validate(example_data(), scenario_schema)
    jsonschema.validate(json.loads(run("plan", str(TWO_PRORATES), "--json").stdout), plan_schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**example_data(), "colour": "red"}, scenario_schema)


@needs_examples
def test_export_scenario_round_trip_through_a_file_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store(url)
    store.import_scenario(load_scenario(TWO_PRORATES))
    store.close()
    out = tmp_path / "exported.json"
    result = run("--db", url, "export-scenario", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert result.stdout == f"Wrote {out}\n"
    assert load_scenario(out).as_of.isoformat() == "2020-09-20"
    exported = run("plan", str(out), "--json").stdout
    assert exported == run("plan", str(TWO_PRORATES), "--json").stdout
    assert json.loads(exported)["totals"]["price"] == "1839.07"


@needs_examples
def test_export_scenario_to_stdout_with_another_as_of(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store(url)
    store.import_scenario(load_scenario(TWO_PRORATES))
    store.close()
    result = run("--db", url, "export-scenario", "--as-of", "2020-10-05")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["as_of"] == "2020-10-05"
