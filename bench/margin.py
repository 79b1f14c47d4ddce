"""The three-way check at month-end scale (issue 14): `uv run python -m bench.margin [--scale N]`
builds the demo MSP at N subscriptions (default 50,000, ≈2,000 customers) and its 12 months of
distributor invoices (engine.sandbox.demo.build_demo_invoices), then times
`engine.margin.three_way_check` for the latest month (with the other 11 months given, as the check
reads them for timing), the same month with what the PSA invoiced (engine.sandbox.demo
.build_demo_psa_invoices: the PSA's invoices replace its lines in force, issue 14 item 2), and every
one of the 12 months, and prints JSON. The check's own time is the figure, `--runs` times each
(median and max of wall and process CPU: on a shared machine the CPU time is the steadier one;
the 1-minute load average is printed with them); building the world is not timed."""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import time


def measure(scale: int, runs: int) -> dict[str, object]:
    from engine.margin import MarginReport, three_way_check
    from engine.margin.psa_invoices import PsaInvoiceLine
    from engine.sandbox.demo import build_demo_invoices, build_demo_psa_invoices, build_demo_scenario

    scenario = build_demo_scenario(scale=scale)
    invoices = build_demo_invoices(scenario)
    psa_invoiced = build_demo_psa_invoices(scenario)
    months = sorted({inv.month for inv in invoices})

    def timed(psa: list[PsaInvoiceLine] | None = None) -> tuple[MarginReport, list[float], list[float]]:
        walls: list[float] = []
        cpus: list[float] = []
        for _ in range(runs):
            gc.collect()
            started, cpu = time.perf_counter(), time.process_time()
            report = three_way_check(scenario, invoices, months[-1], psa_invoiced=psa)
            walls.append(time.perf_counter() - started)
            cpus.append(time.process_time() - cpu)
        return report, walls, cpus

    load_before = os.getloadavg()[0]
    report, walls, cpus = timed()
    from_invoices, billed_walls, billed_cpus = timed(psa_invoiced)
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
        "runs": runs,
        "load_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "check_latest_month_s_median_max": _median_max(walls),
        "check_latest_month_cpu_s_median_max": _median_max(cpus),
        "check_latest_month_psa_invoiced_s_median_max": _median_max(billed_walls),
        "check_latest_month_psa_invoiced_cpu_s_median_max": _median_max(billed_cpus),
        "check_all_12_months_s": round(twelve, 3),
    }


def _median_max(values: list[float]) -> list[float]:
    return [round(statistics.median(values), 3), round(max(values), 3)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=5, help="times each latest-month check is run")
    args = parser.parse_args()
    print(json.dumps(measure(args.scale, max(1, args.runs)), indent=2))


if __name__ == "__main__":
    main()
