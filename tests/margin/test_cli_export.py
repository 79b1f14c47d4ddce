"""`trueup margin` on the sandbox (the demo MSP as of today) and the accountant's export: the CSV
and the XLSX workbook tie out to the cent and carry every row's class and reason."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.margin import three_way_check
from engine.margin.export import report_csv, write_xlsx
from engine.sandbox.demo import build_demo_invoices, build_demo_scenario
from tui.cli import main

D = Decimal


@pytest.fixture(scope="module")
def report():  # type: ignore[no-untyped-def]
    scenario = build_demo_scenario()
    return three_way_check(scenario, build_demo_invoices(scenario), "2026-11")


def test_csv_rows_and_totals_tie_out(report) -> None:  # type: ignore[no-untyped-def]
    lines = list(csv.reader(io.StringIO(report_csv(report))))
    header = lines[1]
    body = []
    for line in lines[2:]:
        if not line:
            break
        body.append(dict(zip(header, line, strict=True)))
    assert len(body) == len(report.rows)
    assert sum(D(r["distributor cost"]) for r in body) == report.totals[0].invoice_total
    assert sum(D(r["PSA price"]) for r in body) == report.totals[0].psa_total
    assert all(r["reason"] for r in body)
    classified = next(line for line in lines if len(line) > 1 and line[1] == "classified")
    assert classified[-1] == "yes"


def test_xlsx_has_one_sheet_per_section_with_exact_sums(report, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from openpyxl import load_workbook  # type: ignore[import-untyped]

    path = tmp_path / "m.xlsx"
    write_xlsx(report, path)
    wb = load_workbook(path)
    assert wb.sheetnames == ["Summary", "Customers", "Subscriptions", "Invoices"]
    rows = list(wb["Subscriptions"].iter_rows(min_row=2, values_only=True))
    assert len(rows) == len(report.rows)
    cents = sum(round(D(str(r[5])) * 100) for r in rows)
    assert cents == report.totals[0].invoice_total * 100
    assert {r[4] for r in rows} >= {"not billed onward", "price below cost", "timing", "matched"}
    summary = [r for r in wb["Summary"].iter_rows(values_only=True) if r and r[1] == "classified"]
    assert summary and summary[0][4] == "yes"
    invoices = list(wb["Invoices"].iter_rows(min_row=2, values_only=True))
    assert [r[5] for r in invoices] == ["yes", "no: replaced"]


def test_the_command_on_the_sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    out = tmp_path / "m.csv"
    result = CliRunner().invoke(main, ["margin", "--csv", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "ties out" in result.output and "DOES NOT" not in result.output
    assert "price below cost" in result.output and "$23.10" in result.output
    assert "Margin per customer:" in result.output
    assert out.read_text().startswith("three-way check ")


def test_bad_arguments_are_one_sentence() -> None:
    for args, message in (
        (["margin", "--month", "2026-13"], "not a month"),
        (["margin", "--floor", "abc"], "a percent from 0 to 100"),
    ):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_a_month_without_invoices_is_not_audited(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    result = CliRunner().invoke(main, ["margin", "--month", "2031-01"], catch_exceptions=False)
    assert result.exit_code == 1
    assert "NOT AUDITED" in result.output


def test_the_customers_sheet_says_where_psa_billed_came_from(tmp_path: Path) -> None:
    from openpyxl import load_workbook  # type: ignore[import-untyped]

    from engine.sandbox.demo import build_demo_psa_invoices

    scenario = build_demo_scenario()
    report = three_way_check(
        scenario, build_demo_invoices(scenario), "2026-11", psa_invoiced=build_demo_psa_invoices(scenario)
    )
    path = tmp_path / "m.xlsx"
    write_xlsx(report, path)
    sheet = load_workbook(path)["Customers"]
    header = next(sheet.iter_rows(max_row=1, values_only=True))
    assert header[-1] == "PSA billed from"
    sources = {r[1]: r[-1] for r in sheet.iter_rows(min_row=2, values_only=True)}
    assert sources["Riverside Montessori School"] == "lines in force"
    assert sources["Harborview Family Dental"] == "invoices"


def test_the_command_says_psa_billed_from_invoices_and_survives_a_failed_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import engine.margin.store
    from engine.connectors.base import ServiceError

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    result = CliRunner().invoke(main, ["margin"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "— PSA billed: from invoices" in result.output
    assert "PSA billed from the PSA's invoices of " in result.output

    async def refused(*_: object) -> None:
        raise ServiceError("ConnectWise", "GET /finance/invoices: 503 Service Unavailable")

    monkeypatch.setattr(engine.margin.store, "refresh_psa_invoiced_if_able", refused)
    again = CliRunner().invoke(main, ["margin"], catch_exceptions=False)
    assert again.exit_code == 0, again.output
    assert "the PSA's invoices could not be read (" in again.output and "503" in again.output
    assert "Traceback" not in again.output and "ties out" in again.output
