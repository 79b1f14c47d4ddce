"""The plan for the terminal and for a spreadsheet: what `trueup plan` prints without --json.

`plan_table` fits the terminal's width (80 columns when it is not known): the line column (its key,
then its description, wrapped) takes what the other columns leave, and when they leave too little
the least needed columns go first — kind (the key says it), end date, effective date, unit price.
The action, the quantity change (`old → new`) and the total are never dropped.

`plan_csv` is the whole plan, one row per line, every field, money as plain decimals; its text
cells (descriptions, ids, formulas: vendor and PSA names reach them) pass
`engine.scrub.spreadsheet_text`, so a spreadsheet runs none as a formula."""

from __future__ import annotations

import csv
import io
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum

from engine.money import fmt_money, fmt_quantity
from engine.plan import Plan, PlanLine
from engine.scrub import spreadsheet_text

DEFAULT_WIDTH = 80
LINE_MIN = 30  # below this the line column is unreadable: drop other columns first
GAP = "  "


@dataclass(frozen=True)
class _Column:
    header: str
    value: Callable[[PlanLine], str]
    align: str  # "<" or ">"
    drop: int | None  # the order columns are dropped in (lowest first); None: never


def _quantity_change(line: PlanLine) -> str:
    new = fmt_quantity(line.quantity)
    if line.previous_quantity is None or line.previous_quantity == line.quantity:
        return new
    return f"{fmt_quantity(line.previous_quantity)} → {new}"


_COLUMNS = (
    _Column("Kind", lambda x: x.kind.value, "<", 0),
    _Column("Action", lambda x: x.action, "<", None),
    _Column("Qty", _quantity_change, ">", None),
    _Column("Unit price", lambda x: fmt_money(x.unit_price), ">", 3),
    _Column("Total", lambda x: fmt_money(x.total_price), ">", None),
    _Column("Effective", lambda x: x.effective_date.isoformat(), "<", 2),
    _Column("End", lambda x: x.end_date.isoformat() if x.end_date else "", "<", 1),
)


def _line_cell(line: PlanLine, width: int) -> list[str]:
    """The key (broken where it must be: it has no spaces), then the description, indented."""
    rows = [line.key[i : i + width] for i in range(0, len(line.key), width)] or [""]
    if line.description:
        rows += textwrap.wrap(line.description, width, initial_indent="  ", subsequent_indent="  ")
    return rows


def plan_table(plan: Plan, width: int | None = None) -> str:
    width = max(width or DEFAULT_WIDTH, 40)
    out = textwrap.wrap(
        f"Plan as of {plan.as_of.isoformat()} · invoiced through {plan.invoiced_through.isoformat()}", width
    )
    out.append("")
    if plan.lines:
        cells = {c.header: [c.value(line) for line in plan.lines] for c in _COLUMNS}
        natural = {c.header: max(len(c.header), *(len(v) for v in cells[c.header])) for c in _COLUMNS}
        shown = list(_COLUMNS)

        def room() -> int:
            return width - sum(natural[c.header] + len(GAP) for c in shown)

        for column in sorted((c for c in _COLUMNS if c.drop is not None), key=lambda c: c.drop or 0):
            if room() >= LINE_MIN:
                break
            shown.remove(column)
        widest = max(max(len(line.key), len(line.description) + 2) for line in plan.lines)
        line_width = max(min(room(), widest), LINE_MIN)

        def row(first: str, values: list[str]) -> str:
            parts = [f"{first:<{line_width}}"]
            parts += [f"{v:{c.align}{natural[c.header]}}" for v, c in zip(values, shown, strict=True)]
            return GAP.join(parts).rstrip()

        rule = row("─" * line_width, ["─" * natural[c.header] for c in shown])
        out += [row("Line", [c.header for c in shown]), rule]
        for i, line in enumerate(plan.lines):
            first, *rest = _line_cell(line, line_width)
            out.append(row(first, [cells[c.header][i] for c in shown]))
            out += [text.rstrip() for text in rest]
        out.append(rule)
        dropped = [c.header.lower() for c in _COLUMNS if c not in shown]
        if dropped:
            out += textwrap.wrap(
                f"(Not shown at {width} columns: {', '.join(dropped)}; `trueup plan --csv` has every field.)",
                width,
            )
    else:
        out.append(
            "No lines to write (see the findings below)."
            if plan.findings
            else "Nothing to write: every line is in sync."
        )
    out += textwrap.wrap(
        f"{len(plan.lines)} line(s) · total price {fmt_money(plan.totals.price)} · "
        f"total cost {fmt_money(plan.totals.cost)}"
        + (f" · {plan.totals.ignored} ignored" if plan.totals.ignored else ""),
        width,
    )
    if plan.findings:
        out += ["", f"Findings ({len(plan.findings)}):"]
        for f in plan.findings:
            subject = ", ".join(f"{k}={v}" for k, v in f.subject.items())
            out += textwrap.wrap(
                f"{f.severity.upper():7} {f.code} [{subject}] {f.message}",
                width,
                initial_indent="  ",
                subsequent_indent="    ",
                break_on_hyphens=False,
            )
    return "\n".join(out)


CSV_FIELDS = (
    "key",
    "kind",
    "action",
    "subscription_id",
    "company_id",
    "psa_agreement_id",
    "psa_product_id",
    "psa_line_id",
    "description",
    "previous_quantity",
    "quantity",
    "unit_price",
    "unit_cost",
    "total_price",
    "total_cost",
    "effective_date",
    "end_date",
    "period_start",
    "period_end",
    "months",
    "sub_product",
    "provisional",
    "replaces_line_id",
    "formula",
)


def _plain(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value, "f")  # 12.50, never 1.25E+1 or $12.50
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(getattr(value, "value", value))  # an enum's value, a date's ISO text


def _cell(value: object) -> str:
    """A CSV cell: text guarded against formulas (an enum's own words need not be), the rest plain."""
    if isinstance(value, str) and not isinstance(value, Enum):
        return spreadsheet_text(value, newlines=True)
    return _plain(value)


def plan_csv(plan: Plan) -> str:
    """Every plan line as one CSV row (a header row first), in the plan's order."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for line in plan.lines:
        writer.writerow([_cell(getattr(line, name)) for name in CSV_FIELDS])
    return buffer.getvalue()
