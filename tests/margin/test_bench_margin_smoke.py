"""bench/margin.py runs and its world ties out (at the smallest scale the demo builds)."""

from __future__ import annotations

from bench.margin import measure


def test_the_margin_bench_runs_and_ties_out() -> None:
    result = measure(150, runs=2)
    assert result["ties_out"] is True
    assert result["invoices"] == 13 and result["subscriptions"] == 150
    assert result["runs"] == 2
    for figure in ("check_latest_month_cpu_s_median_max", "check_latest_month_psa_invoiced_cpu_s_median_max"):
        median, worst = result[figure]
        assert 0 <= median <= worst  # seconds, rounded to the millisecond
    assert result["psa_invoice_lines"] > 0
