"""bench/margin.py runs and its world ties out (at the smallest scale the demo builds)."""

from __future__ import annotations

from bench.margin import measure


def test_the_margin_bench_runs_and_ties_out() -> None:
    result = measure(150)
    assert result["ties_out"] is True
    assert result["invoices"] == 13 and result["subscriptions"] == 150
    assert isinstance(result["check_latest_month_s"], float)
    assert isinstance(result["check_latest_month_psa_invoiced_s"], float) and result["psa_invoice_lines"] > 0
