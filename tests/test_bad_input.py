"""Bad input, everywhere (issue 11): every mutation class of a scenario file is refused with its
path and exit 2; file reads refuse what is not a regular file of sane size; every CLI command turns
a store it cannot use into one sentence (exit 1), never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from engine import scenario_io
from tui.cli import main

EXAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "contract" / "examples"
TWO_PRORATES = EXAMPLES / "seed001_update_addition_two_prorates.json"
needs_examples = pytest.mark.skipif(
    not EXAMPLES.is_dir(), reason=f"shared contract examples absent ({EXAMPLES})"
)


def run(*args: str) -> object:
    return CliRunner().invoke(main, list(args), catch_exceptions=True)


def data() -> dict:
    return json.loads(TWO_PRORATES.read_text())


SUB = "vendor.subscriptions[0]"
H1 = f"{SUB}.history[1]"


def sub(d: dict) -> dict:
    return d["vendor"]["subscriptions"][0]


def hist(d: dict) -> dict:
    return sub(d)["history"][1]


# (change, the problem line the CLI prints)
MUTATIONS = {
    "quantity 1e400 (JSON number)": (
        '"quantity": "282"',
        '"quantity": 1e400',
        f"{H1}.quantity: too large (at most 12 digits before the decimal point)",
    ),
    "quantity 1E+999999": (
        '"quantity": "282"',
        '"quantity": "1E+999999"',
        f"{H1}.quantity: too large (at most 12 digits before the decimal point)",
    ),
    "quantity NaN literal": ('"quantity": "282"', '"quantity": NaN', f"{H1}.quantity: not a finite number"),
    "quantity NaN text": ('"quantity": "282"', '"quantity": "NaN"', f"{H1}.quantity: not a decimal number"),
    "price Infinity": (
        '"unit_price": "6.00"',
        '"unit_price": Infinity',
        f"{SUB}.unit_price: not a finite number",
    ),
    "39 digits": (
        '"quantity": "282"',
        '"quantity": "' + "1" * 39 + '"',
        f"{H1}.quantity: too many digits (at most 38)",
    ),
    "5000-digit integer": (
        '"quantity": "282"',
        '"quantity": ' + "9" * 5000,
        f"{H1}.quantity: too many digits (at most 38)",
    ),
    "negative quantity": ('"quantity": "282"', '"quantity": "-5"', f"{H1}.quantity: must not be negative"),
    "negative price": (
        '"unit_price": "6.00"',
        '"unit_price": "-1"',
        f"{SUB}.unit_price: must not be negative",
    ),
    "3 decimal places": (
        '"unit_price": "6.00"',
        '"unit_price": "25.005"',
        f"{SUB}.unit_price: more than 2 decimal places (money is in cents)",
    ),
    "Arabic-Indic digit": (
        '"quantity": "282"',
        '"quantity": "\\u0663"',
        f"{H1}.quantity: not a decimal number (ASCII digits only)",
    ),
    "underscore separator": (
        '"quantity": "282"',
        '"quantity": "1_000"',
        f"{H1}.quantity: not a decimal number (no _ separators)",
    ),
    "spaces around": (
        '"quantity": "282"',
        '"quantity": " 25 "',
        f"{H1}.quantity: not a decimal number (spaces around it)",
    ),
    "boolean quantity": ('"quantity": "282"', '"quantity": true', f"{H1}.quantity: not a decimal number"),
    "date 9999-12-31": (
        '"effective_date": "2020-08-05"',
        '"effective_date": "9999-12-31"',
        f"{H1}.effective_date: outside 1900–2999",
    ),
    "date 1899": (
        '"effective_date": "2020-08-05"',
        '"effective_date": "1899-12-31"',
        f"{H1}.effective_date: outside 1900–2999",
    ),
    "as_of 0": ('"as_of": "2020-09-20"', '"as_of": 0', "as_of: not a date (expected YYYY-MM-DD)"),
    "date with time": (
        '"as_of": "2020-09-20"',
        '"as_of": "2020-09-20T10:00:00"',
        "as_of: not a date (expected YYYY-MM-DD)",
    ),
    "NUL in a name": (
        '"name": "Ace Chemical Processing Plant", "status"',
        '"name": "Ace\\u0000", "status"',
        "vendor.companies[0].name: contains a control character (escape, NUL, C0/C1) or a bidi override",
    ),
    "ESC in a name": (
        '"name": "Ace Chemical Processing Plant", "status"',
        '"name": "Esc \\u001b]0;PWNED\\u0007 \\u001b[2J", "status"',
        "vendor.companies[0].name: contains a control character (escape, NUL, C0/C1) or a bidi override",
    ),
    "C1 in a name": (
        '"name": "Ace Chemical Processing Plant", "status"',
        '"name": "A\\u009bce", "status"',
        "vendor.companies[0].name: contains a control character (escape, NUL, C0/C1) or a bidi override",
    ),
    "bidi override": (
        '"name": "Ace Chemical Processing Plant", "status"',
        '"name": "A\\u202ece", "status"',
        "vendor.companies[0].name: contains a control character (escape, NUL, C0/C1) or a bidi override",
    ),
    "newline in a name": (
        '"name": "Ace Chemical Processing Plant", "status"',
        '"name": "A\\nB", "status"',
        "vendor.companies[0].name: contains a control character (escape, NUL, C0/C1) or a bidi override",
    ),
    "lone surrogate": (
        '"name": "Ace Chemical Processing Plant", "status"',
        '"name": "A\\ud800", "status"',
        "vendor.companies[0].name: not valid text (a lone surrogate)",
    ),
    "over-long name": (
        '"name": "Ace Chemical Processing Plant", "status"',
        '"name": "' + "x" * 501 + '", "status"',
        "vendor.companies[0].name: too long (at most 500 characters)",
    ),
    "over-long id": (
        '"id": "ace"',
        '"id": "' + "a" * 256 + '"',
        "vendor.companies[0].id: too long (at most 255 characters)",
    ),
    "unknown company": (
        '"company_id": "ace"',
        '"company_id": "nobody"',
        f"{SUB}.company_id: no vendor company 'nobody' in the scenario",
    ),
    "unknown product": (
        '"product_id": "ess"',
        '"product_id": "nothing"',
        f"{SUB}.product_id: no vendor product 'nothing' in the scenario",
    ),
    "mapping to an unknown PSA company": (
        '"psa_id": "19"',
        '"psa_id": "77"',
        "mappings.companies[0].psa_id: no PSA company '77' in the scenario",
    ),
    "binding to an unknown PSA product": (
        '"psa_product_id": "700"',
        '"psa_product_id": "701"',
        "mappings.products[0].psa_product_id: no PSA product '701' in the scenario",
    ),
    "line on an unknown agreement": (
        '"agreement_id": "290"',
        '"agreement_id": "291"',
        "psa.lines[0].agreement_id: no PSA agreement '291' in the scenario",
    ),
}


@needs_examples
@pytest.mark.parametrize("case", list(MUTATIONS))
def test_each_mutation_class_exits_2_naming_the_path(tmp_path: Path, case: str) -> None:
    old, new, problem = MUTATIONS[case]
    text = json.dumps(data())
    assert old in text, case
    path = tmp_path / "scenario.json"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    result = run("plan", str(path))
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # a clean exit, not a crash
    assert result.stdout == ""
    assert f"\n  {problem}\n" in result.stderr, result.stderr


@needs_examples
def test_usage_for_an_unknown_subscription_is_refused(tmp_path: Path) -> None:
    d = data()
    d["vendor"]["usage"] = [{"subscription_id": "ghost", "period": "2020-08", "quantity": "1"}]
    path = tmp_path / "s.json"
    path.write_text(json.dumps(d))
    result = run("plan", str(path))
    assert result.exit_code == 2
    assert "vendor.usage[0].subscription_id: no subscription 'ghost' in the scenario" in result.stderr


@needs_examples
def test_money_written_with_trailing_zeros_is_still_cents(tmp_path: Path) -> None:
    text = json.dumps(data()).replace('"unit_price": "6.00"', '"unit_price": "6.0000"', 1)
    path = tmp_path / "s.json"
    path.write_text(text)
    result = run("plan", str(path), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["totals"]["price"] == "1839.07"


# --- file reads ----------------------------------------------------------------------------------


def test_a_fifo_is_refused_without_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "scenario.json"
    os.mkfifo(fifo)
    started = time.monotonic()
    result = run("plan", str(fifo))
    assert time.monotonic() - started < 5
    assert result.exit_code == 2
    assert result.stderr == f"trueup: {fifo}: invalid scenario\n  not a regular file (a FIFO)\n"


def test_dev_zero_is_refused_at_once() -> None:
    result = run("plan", "/dev/zero")
    assert result.exit_code == 2
    assert result.stderr == "trueup: /dev/zero: invalid scenario\n  not a regular file (a device)\n"


def test_a_directory_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["plan", str(tmp_path)])
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_a_file_over_the_size_cap_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scenario_io, "MAX_BYTES", 1000)
    path = tmp_path / "big.json"
    path.write_text(" " * 1001 + "{}")
    with pytest.raises(scenario_io.ScenarioError) as caught:
        scenario_io.load_scenario(path)
    assert caught.value.problems == ["too large (1,003 bytes; at most 1,000)"]


@pytest.mark.parametrize("depth", [40, 1000, 100_000])
def test_deep_json_nesting_is_a_clean_error(tmp_path: Path, depth: int) -> None:
    path = tmp_path / "deep.json"
    path.write_text('{"as_of": "2020-09-20", "vendor": ' + "[" * depth + "]" * depth + "}")
    result = run("plan", str(path))
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert "nested more than 32 levels deep" in result.stderr


def test_a_yaml_alias_bomb_is_refused_fast(tmp_path: Path) -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for n, name in enumerate("bcdefghijklm"):
        prev = "abcdefghijklm"[n]
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    text = "\n".join(lines) + "\n"
    text += "pad: " + json.dumps("x" * (94_000 - len(text))) + "\n"  # the 94 KB of the report
    path = tmp_path / "bomb.yaml"
    path.write_text(text)
    assert 90_000 < path.stat().st_size < 100_000
    started = time.monotonic()
    result = run("plan", str(path))
    assert time.monotonic() - started < 5
    assert result.exit_code == 2
    assert "aliases expand to more than 2,000,000 values" in result.stderr


def test_yaml_numbers_are_plain_decimals(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "as_of: 2020-09-20\nvendor:\n  usage: []\nsynced:\n  - {key: k, quantity: 1_000, synced_on: 2020-01-01}\n"
    )
    result = run("plan", str(path))
    assert result.exit_code == 2
    assert "synced[0].quantity: not a decimal number (no _ separators)" in result.stderr
    path.write_text("as_of: 2020-09-20\nsynced:\n  - {key: k, quantity: .inf, synced_on: 2020-01-01}\n")
    assert "synced[0].quantity: not a finite number" in run("plan", str(path)).stderr
    path.write_text("as_of: 2020-09-20\nsynced:\n  - {key: k, quantity: 12.50, synced_on: 2020-01-01}\n")
    assert run("plan", str(path)).exit_code == 0


def test_yaml_is_read_with_a_safe_loader(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("!!python/object/apply:os.system ['echo pwned']\n")
    result = run("plan", str(path))
    assert result.exit_code == 2 and "not valid YAML" in result.stderr


# --- store and connection errors: one sentence, exit 1 -------------------------------------------

COMMANDS = [
    ("audit",),
    ("export-scenario",),
    ("refresh",),
    ("sync", "--dry-run"),
    ("doctor",),
]


def _stores(tmp_path: Path) -> dict[str, tuple[str, str]]:
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"this is no database at all" * 100)
    return {
        "zero-length SQLite": (f"sqlite:///{empty}", "is an empty file (0 bytes), not a trueup store"),
        "corrupt SQLite": (f"sqlite:///{corrupt}", "is not a SQLite database"),
        "unreachable PostgreSQL": (
            "postgresql://trueup:pw-not-shown@127.0.0.1:1/trueup",
            "cannot be used: connection failed",
        ),
    }


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
@pytest.mark.parametrize("kind", ["zero-length SQLite", "corrupt SQLite", "unreachable PostgreSQL"])
def test_every_command_says_the_store_cannot_be_used_in_one_sentence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: tuple[str, ...], kind: str
) -> None:
    monkeypatch.setenv("TRUEUP_CONFIG", str(tmp_path / "absent.toml"))
    url, said = _stores(tmp_path)[kind]
    before = {p: p.stat().st_size for p in tmp_path.glob("*.db")}
    result = CliRunner().invoke(main, ["--db", url, *command], catch_exceptions=True)
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    assert said in result.stderr
    assert result.stderr.startswith("trueup: ") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.output and "pw-not-shown" not in result.output
    assert {p: p.stat().st_size for p in tmp_path.glob("*.db")} == before  # nothing opened as a new store


def test_a_wrong_database_password_is_one_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    url = os.environ.get("TRUEUP_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("TRUEUP_TEST_POSTGRES_URL not set")
    from sqlalchemy.engine import make_url

    wrong = make_url(url).set(password="wrong-password-xyz").render_as_string(hide_password=False)
    result = CliRunner().invoke(main, ["--db", wrong, "audit"], catch_exceptions=True)
    assert result.exit_code == 1
    assert "password authentication failed" in result.stderr
    assert "wrong-password-xyz" not in result.output and result.stderr.count("\n") == 1


def test_export_scenario_to_a_missing_directory_is_one_sentence_exit_2(tmp_path: Path) -> None:
    result = run("--db", f"sqlite:///{tmp_path / 's.db'}", "export-scenario", "-o", "/nonexistent/dir/x.json")
    assert result.exit_code == 2
    assert result.stderr == (
        "trueup: cannot write /nonexistent/dir/x.json: No such file or directory; nothing was written.\n"
    )


def test_the_real_command_prints_no_traceback_on_a_broken_store(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    trueup = Path(sys.executable).with_name("trueup")
    result = subprocess.run(
        [str(trueup), "--db", f"sqlite:///{empty}", "audit"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert empty.stat().st_size == 0


# --- the same validation guards the services' data -----------------------------------------------


@pytest.mark.parametrize("bad", [Decimal("1E+400"), Decimal("-5"), Decimal("1" * 39)], ids=str)
async def test_a_vendor_quantity_the_model_refuses_fails_the_refresh_and_keeps_the_store(bad: Any) -> None:
    """Pax8 answering quantity 1e400 (or -5, or 39 digits) is a refresh error naming the problem; the store
    keeps the previous figures and the plan is still computed (the console never waits on it)."""
    import httpx

    from engine.connectors.connectwise import ConnectWiseConnector
    from engine.connectors.pax8 import Pax8Connector
    from engine.reconcile import reconcile
    from engine.refresh import refresh
    from engine.sandbox.connectwise import ConnectWiseSandbox
    from engine.sandbox.pax8 import Pax8Sandbox
    from engine.store import Store

    sys.path.insert(0, str(Path(__file__).resolve().parent / "sync"))
    from sync_builder import AS_OF, build_scenario

    scenario = build_scenario(
        "connectwise", new=2, updates=1, cancels=0, create_new=0, record_only=0, companies=1
    )
    pax8 = Pax8Sandbox.from_scenario(scenario)
    cw = ConnectWiseSandbox.from_scenario(scenario)

    async def no_sleep(_s: float) -> None:
        return None

    def connectors() -> tuple[Any, Any]:
        return (
            Pax8Connector(
                pax8.client_id, pax8.client_secret, transport=httpx.MockTransport(pax8.handle), sleep=no_sleep
            ),
            ConnectWiseConnector(
                cw.site,
                cw.company_id,
                cw.public_key,
                cw.private_key,
                cw.client_id,
                codebase=cw.codebase,
                transport=httpx.MockTransport(cw.handle),
                sleep=no_sleep,
            ),
        )

    store = Store.memory()
    store.import_scenario(scenario)  # the mappings; the refresh brings the services' data
    clock = lambda: datetime(2026, 3, 10, 9, tzinfo=UTC)  # noqa: E731
    vendor, psa = connectors()
    first = await refresh(store, vendor, psa, full=True, today=AS_OF, clock=clock)
    assert first.errors == []
    before = store.snapshot(AS_OF).vendor
    assert before.subscriptions
    target = before.subscriptions[0].id
    pax8.subscriptions[target]["quantity"] = bad
    for snapshot in pax8.history.get(target, []):
        snapshot["quantity"] = bad
    vendor, psa = connectors()
    second = await refresh(store, vendor, psa, full=True, today=AS_OF, clock=clock)
    assert len(second.errors) == 1
    said = " ".join(second.errors[0].split())
    assert said.startswith("pax8") and "quantity" in said
    assert any(word in said for word in ("too large", "must not be negative", "too many digits")), said
    assert store.snapshot(AS_OF).vendor == before  # the store is as it was
    plan = reconcile(*store.plan_inputs(AS_OF))  # and the plan is computed from it
    assert plan.lines


def test_a_service_answering_nan_is_refused_at_the_parse_hook() -> None:
    from engine.connectors.http import loads

    with pytest.raises(ValueError, match="NaN is not a number"):
        loads('{"quantity": NaN}')
    assert loads('{"name": "Esc \\u001b]0;PWNED\\u0007 ok", "q": 1.50}') == {
        "name": "Esc  ok",
        "q": Decimal("1.50"),
    }
