"""The month's three-way check for the accountant: CSV (one table, every row with its class and
reason, then the totals) and an XLSX workbook (openpyxl) with one sheet per section — Summary
(per currency: invoice total, PSA total, classified sums, tie-out, per class), Customers,
Subscriptions, Invoices. Money is written as exact decimals (CSV: the text; XLSX: numbers with
a two-place format, as Decimal → float only for the cell, the sums beside them written by the
engine, not by a spreadsheet formula). Text cells hold vendor and PSA names, so none may become a
formula (`engine.scrub`): in the CSV they pass `spreadsheet_text` (a `'` before `=`, `+`, `-`,
`@`); in the workbook openpyxl stores a string starting with "=" as a formula (`Cell._bind_value`,
openpyxl 3.1), so such a cell is typed back to a string and marked quote-prefixed, the way Excel
marks text typed after a `'`: the name shows as it is and editing it keeps it text."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path

from engine.margin.check import CLASS_LABELS, CLASSES, MarginReport, margin_percent
from engine.scrub import spreadsheet_text, starts_formula

ROW_HEADER = [
    "currency",
    "customer",
    "subscription",
    "product",
    "class",
    "distributor cost",
    "PSA price",
    "should bill",
    "margin",
    "margin %",
    "vendor quantity",
    "PSA quantity",
    "reason",
]


def _text(value: Decimal | None) -> str:
    return "" if value is None else f"{value}"


def report_csv(report: MarginReport) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    t = spreadsheet_text
    w.writerow(
        [f"three-way check {report.month}", report.status.replace("_", " "), t(f"PSA: {report.psa_source}")]
    )
    w.writerow(ROW_HEADER)
    for r in report.rows:
        w.writerow(
            [
                t(r.currency),
                t(r.company_name),
                t(r.subscription_id or ""),
                t(r.product),
                CLASS_LABELS[r.cls],
                _text(r.cost),
                _text(r.price),
                _text(r.should_bill),
                _text(r.margin),
                _text(margin_percent(r.price, r.cost)),
                _text(r.vendor_quantity),
                _text(r.psa_quantity),
                t(r.reason, newlines=True),
            ]
        )
    w.writerow([])
    w.writerow(["currency", "total", "distributor cost", "PSA price", "ties out"])
    for total in report.totals:
        currency = t(total.currency)
        w.writerow([currency, "invoices / PSA", _text(total.invoice_total), _text(total.psa_total), ""])
        for cls in CLASSES:
            if cls in total.by_class:
                cost, price = total.by_class[cls]
                w.writerow([currency, CLASS_LABELS[cls], _text(cost), _text(price), ""])
        w.writerow(
            [currency, "classified", _text(total.cost), _text(total.price), "yes" if total.ties_out else "NO"]
        )
    return out.getvalue()


def write_csv(report: MarginReport, path: Path) -> None:
    path.write_text(report_csv(report), encoding="utf-8")


def write_xlsx(report: MarginReport, path: Path) -> None:
    from openpyxl import Workbook  # type: ignore[import-untyped]  # no stubs installed: types-openpyxl (asked for in the report)
    from openpyxl.styles import Font  # type: ignore[import-untyped]  # as above

    money = "#,##0.00"
    bold = Font(bold=True)
    wb = Workbook()
    summary = wb.active
    assert summary is not None
    summary.title = "Summary"
    summary.append([f"Three-way check {report.month}", report.status.replace("_", " ")])
    summary.append(["PSA billed from", report.psa_source])
    summary.append([])
    summary.append(["currency", "section", "distributor cost", "PSA price", "ties out"])
    for t in report.totals:
        summary.append([t.currency, "invoice total / PSA total", t.invoice_total, t.psa_total, None])
        for cls in CLASSES:
            if cls in t.by_class:
                cost, price = t.by_class[cls]
                summary.append([t.currency, CLASS_LABELS[cls], cost, price, None])
        summary.append([t.currency, "classified", t.cost, t.price, "yes" if t.ties_out else "NO"])
        summary.append([])

    customers = wb.create_sheet("Customers")
    customers.append(
        [
            "currency",
            "customer",
            "distributor cost",
            "PSA price",
            "should bill",
            "margin",
            "margin %",
            "leaks",
            "PSA billed from",
        ]
    )
    for c in report.customers:
        customers.append(
            [
                c.currency,
                c.company_name,
                c.cost,
                c.price,
                c.should_bill,
                c.margin,
                c.margin_percent,
                c.leaks,
                c.psa_billed_from,
            ]
        )

    rows = wb.create_sheet("Subscriptions")
    rows.append(ROW_HEADER)
    for r in report.rows:
        rows.append(
            [
                r.currency,
                r.company_name,
                r.subscription_id,
                r.product,
                CLASS_LABELS[r.cls],
                r.cost,
                r.price,
                r.should_bill,
                r.margin,
                margin_percent(r.price, r.cost),
                r.vendor_quantity,
                r.psa_quantity,
                r.reason,
            ]
        )

    invoices = wb.create_sheet("Invoices")
    invoices.append(["invoice", "date", "status", "currency", "total", "counted"])
    for inv in report.invoices:
        invoices.append([inv.id, inv.invoice_date, inv.status, inv.currency, inv.total, "yes"])
    for inv in report.replaced:
        invoices.append([inv.id, inv.invoice_date, inv.status, inv.currency, inv.total, "no: replaced"])

    for sheet in wb.worksheets:
        for cell in sheet[1 if sheet.title != "Summary" else 4]:
            cell.font = bold
        for row in sheet.iter_rows():
            for cell in row:
                if isinstance(cell.value, Decimal):
                    cell.number_format = money
                elif isinstance(cell.value, str) and starts_formula(cell.value):
                    cell.data_type = "s"  # openpyxl made a string starting with "=" a formula
                    cell.quotePrefix = True
    wb.save(path)


__all__ = ["report_csv", "write_csv", "write_xlsx"]
