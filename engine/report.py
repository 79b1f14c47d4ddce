"""The plan as a readable table for the terminal (what `trueup plan` prints without --json)."""

from __future__ import annotations

from engine.money import fmt_money, fmt_quantity
from engine.plan import Plan


def _cell(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def plan_table(plan: Plan) -> str:
    out = [f"Plan as of {plan.as_of.isoformat()} · invoiced through {plan.invoiced_through.isoformat()}", ""]
    header = ("Key", "Kind", "Action", "Qty", "Unit price", "Total price", "Effective", "End")
    widths = (40, 12, 7, 8, 11, 12, 10, 10)
    aligns = ("<", "<", "<", ">", ">", ">", "<", "<")

    def row(values: tuple[str, ...]) -> str:
        return "  ".join(
            f"{_cell(v, w):{a}{w}}" for v, w, a in zip(values, widths, aligns, strict=True)
        ).rstrip()

    if plan.lines:
        out.append(row(header))
        out.append(row(tuple("─" * w for w in widths)))
        for line in plan.lines:
            out.append(
                row(
                    (
                        line.key,
                        line.kind.value,
                        line.action,
                        fmt_quantity(line.quantity),
                        fmt_money(line.unit_price),
                        fmt_money(line.total_price),
                        line.effective_date.isoformat(),
                        line.end_date.isoformat() if line.end_date else "",
                    )
                )
            )
        out.append(row(tuple("─" * w for w in widths)))
    else:
        out.append(
            "No lines to write (see the findings below)."
            if plan.findings
            else "Nothing to write: every line is in sync."
        )
    out.append(
        f"{len(plan.lines)} line(s) · total price {fmt_money(plan.totals.price)} · "
        f"total cost {fmt_money(plan.totals.cost)}"
        + (f" · {plan.totals.ignored} ignored" if plan.totals.ignored else "")
    )
    if plan.findings:
        out += ["", f"Findings ({len(plan.findings)}):"]
        for f in plan.findings:
            subject = ", ".join(f"{k}={v}" for k, v in f.subject.items())
            out.append(f"  {f.severity.upper():7} {f.code} [{subject}] {f.message}")
    return "\n".join(out)
