"""No CSV or XLSX writer lets a vendor or PSA name become a spreadsheet formula (OWASP "CSV
Injection"), and none touches a money or quantity cell: `trueup plan --csv`, the margin check's
CSV and XLSX, `trueup renewals --csv`, the console's `w`. One guard: engine.scrub."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from textual.app import App, ComposeResult

from engine.margin import three_way_check
from engine.margin.export import report_csv, write_xlsx
from engine.reconcile import reconcile
from engine.report import plan_csv
from engine.sandbox.demo import build_demo_invoices, build_demo_scenario
from engine.scrub import spreadsheet_text, starts_formula
from engine.store import Store
from tui.cli import main
from tui.rows import Column
from tui.widgets.keyed_table import KeyedTable

COMPANY = '=HYPERLINK("http://x","y")'
PRODUCT = "-5+3"
GUARDED_COMPANY = "'" + COMPANY
GUARDED_PRODUCT = "'" + PRODUCT


@pytest.mark.parametrize(
    ("text", "cell"),
    [
        (COMPANY, GUARDED_COMPANY),
        (PRODUCT, GUARDED_PRODUCT),
        ("+1 555 0100", "'+1 555 0100"),
        ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
        ("  =1+1", "'  =1+1"),  # an import that trims spaces would leave the formula bare
        ("\t=1+1", "' =1+1"),  # the tab goes (clean_text), the guard stays
        ("\x1b]0;x\x07=cmd", "'=cmd"),  # an escape sequence hiding the formula goes first
        ("Acme = best", "Acme = best"),
        ("Microsoft 365 E3", "Microsoft 365 E3"),
        ("", ""),
    ],
)
def test_spreadsheet_text(text: str, cell: str) -> None:
    assert spreadsheet_text(text) == cell


def _hostile(scenario: Any) -> Any:
    """The demo with one vendor company and one vendor product named like formulas."""
    vendor = scenario.vendor
    companies = [
        c.model_copy(update={"name": COMPANY}) if c.name == "St. Anne's Parish" else c
        for c in vendor.companies
    ]
    products = [
        p.model_copy(update={"name": PRODUCT}) if p.name == "Microsoft 365 E3" else p for p in vendor.products
    ]
    assert companies != vendor.companies and products != vendor.products
    return scenario.model_copy(
        update={"vendor": vendor.model_copy(update={"companies": companies, "products": products})}
    )


def test_plan_csv_guards_text_cells_and_keeps_negative_money_plain() -> None:
    plan = reconcile(build_demo_scenario())
    first = plan.lines[0].model_copy(
        update={
            "description": COMPANY,
            "sub_product": PRODUCT,
            "unit_price": Decimal("-72.00"),
            "total_price": Decimal("-72.00"),
        }
    )
    plan = plan.model_copy(update={"lines": [first, *plan.lines[1:]]})
    rows = list(csv.DictReader(io.StringIO(plan_csv(plan))))
    assert rows[0]["description"] == GUARDED_COMPANY
    assert rows[0]["sub_product"] == GUARDED_PRODUCT
    assert rows[0]["total_price"] == "-72.00" and rows[0]["unit_price"] == "-72.00"
    assert rows[1]["description"] == plan.lines[1].description  # ordinary text as it was


@pytest.fixture(scope="module")
def margin_report() -> Any:
    scenario = _hostile(build_demo_scenario())
    return three_way_check(scenario, build_demo_invoices(scenario), "2026-11")


def test_margin_csv_guards_names_and_keeps_negative_margins(margin_report: Any) -> None:
    lines = list(csv.reader(io.StringIO(report_csv(margin_report))))
    header = lines[1]
    body = [dict(zip(header, line, strict=True)) for line in lines[2 : 2 + len(margin_report.rows)]]
    hostile = [r for r in body if r["customer"] == GUARDED_COMPANY and r["product"] == GUARDED_PRODUCT]
    assert hostile
    assert any(r["margin"] == "-21.72" for r in hostile)  # a loss, written as the plain decimal
    assert not any(COMPANY in (r["customer"], r["product"]) or r["product"] == PRODUCT for r in body)


def test_margin_xlsx_writes_formula_like_names_as_text(margin_report: Any, tmp_path: Path) -> None:
    from openpyxl import load_workbook  # type: ignore[import-untyped]  # no stubs installed

    path = tmp_path / "m.xlsx"
    write_xlsx(margin_report, path)
    sheet = load_workbook(path)["Subscriptions"]
    cells = [row for row in sheet.iter_rows(min_row=2) if row[1].value == COMPANY and row[3].value == PRODUCT]
    assert cells, "the names are in the workbook as they are (no apostrophe in the text)"
    for row in cells:
        assert row[1].data_type == "s" and row[1].quotePrefix  # text, not the formula openpyxl would make
        assert row[3].data_type == "s" and row[3].quotePrefix
    margins = [row[8] for row in cells]
    assert any(m.data_type == "n" and m.value < 0 for m in margins)  # money stays a number
    assert not any(m.quotePrefix for m in margins)
    customers = [r for r in load_workbook(path)["Customers"].iter_rows(min_row=2) if r[1].value == COMPANY]
    assert customers and customers[0][1].data_type == "s"


def test_renewals_csv_guards_the_company(tmp_path: Path) -> None:
    scenario = build_demo_scenario()
    vendor = scenario.vendor
    companies = [
        c.model_copy(update={"name": COMPANY}) if c.name == "Zephyr Cove Marine Supply" else c
        for c in vendor.companies
    ]
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store(url)
    store.import_scenario(
        scenario.model_copy(update={"vendor": vendor.model_copy(update={"companies": companies})})
    )
    store.close()
    result = CliRunner().invoke(main, ["--db", url, "renewals", "--as-of", "2026-11-21", "--csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert rows and {r["company"] for r in rows} == {GUARDED_COMPANY}
    assert rows[1]["monthly_cost"] == "42.50"


class _TableApp(App[None]):
    COLUMNS = (
        Column("customer", "Customer"),
        Column("product", "Product"),
        Column("change", "Increase"),  # a quantity change shown as text: "+2"
        Column("net", "Net $/mo", numeric=True),
        Column("total", "Total"),  # money in a column not marked numeric
    )

    def compose(self) -> ComposeResult:
        yield KeyedTable(self.COLUMNS)


async def test_console_w_guards_text_cells_only(tmp_path: Path) -> None:
    app = _TableApp()
    async with app.run_test() as pilot:
        table = app.query_one(KeyedTable)
        table.apply(
            [
                ("a", (COMPANY, PRODUCT, "+2", "-$72.00", "-72.00"), ""),
                ("b", ("Acme", "@SUM(A1)", "3 → 5", "+$1,234.56", "—"), ""),
            ]
        )
        await pilot.pause()
        assert table.write_csv(tmp_path / "t.csv") == 2
    rows = list(csv.reader((tmp_path / "t.csv").open(encoding="utf-8")))
    assert rows[1] == [GUARDED_COMPANY, GUARDED_PRODUCT, "+2", "-$72.00", "-72.00"]
    assert rows[2] == ["Acme", "'@SUM(A1)", "3 → 5", "+$1,234.56", "—"]
    assert starts_formula(rows[1][3])  # the money cell would start a formula: it is kept, not guarded
