"""The three-way check at month-end scale (issue 14): `uv run python -m bench.margin [--scale N]`
builds the demo MSP at N subscriptions (default 50,000, ≈2,000 customers) and its 12 months of
distributor invoices (engine.sandbox.demo.build_demo_invoices), then times
`engine.margin.three_way_check` for the latest month (with the other 11 months given, as the check
reads them for timing), the same month with what the PSA invoiced (engine.sandbox.demo
.build_demo_psa_invoices: the PSA's invoices replace its lines in force, issue 14 item 2), and every
one of the 12 months, and prints JSON. The check's own time
is the figure (wall and process CPU: on a shared machine the CPU time is the\nmachine-independent one); building the world is not timed."""

from __future__ import annotations

import argparse
import gc
import json
import time


def measure(scale: int) -> dict[str, object]:
    from engine.margin import three_way_check
    from engine.sandbox.demo import build_demo_invoices, build_demo_psa_invoices, build_demo_scenario

    scenario = build_demo_scenario(scale=scale)
    invoices = build_demo_invoices(scenario)
    psa_invoiced = build_demo_psa_invoices(scenario)
    months = sorted({inv.month for inv in invoices})
    gc.collect()
    started, cpu = time.perf_counter(), time.process_time()
    report = three_way_check(scenario, invoices, months[-1])
    one, one_cpu = time.perf_counter() - started, time.process_time() - cpu
    started, cpu = time.perf_counter(), time.process_time()
    from_invoices = three_way_check(scenario, invoices, months[-1], psa_invoiced=psa_invoiced)
    billed, billed_cpu = time.perf_counter() - started, time.process_time() - cpu
    started = time.perf_counter()
    tied = all(three_way_check(scenario, invoices, month).ties_out for month in months)
    twelve = time.perf_counter() - started
    return {
        "subscriptions": len(scenario.vendor.subscriptions),
        "customers": len(scenario.vendor.companies),
        "psa_lines": len(scenario.psa.lines),
        "invoices": len(invoices),
        "invoice_items": sum(len(inv.items) for inv in invoices),
        "rows": len(report.rows),
        "psa_invoice_lines": len(psa_invoiced),
        "ties_out": report.ties_out and tied and from_invoices.ties_out,
        "check_latest_month_s": round(one, 3),
        "check_latest_month_cpu_s": round(one_cpu, 3),
        "check_latest_month_psa_invoiced_s": round(billed, 3),
        "check_latest_month_psa_invoiced_cpu_s": round(billed_cpu, 3),
        "check_all_12_months_s": round(twelve, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=int, default=50_000)
    args = parser.parse_args()
    print(json.dumps(measure(args.scale), indent=2))


if __name__ == "__main__":
    main()
