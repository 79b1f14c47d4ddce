"""The three-way check against the distributor's invoice (issue 14): invoices, the check, exports."""

from engine.margin.check import (
    CLASS_LABELS,
    CLASSES,
    CurrencyTotals,
    CustomerMargin,
    MarginReport,
    MarginRow,
    MarginSettings,
    Mark,
    margin_percent,
    three_way_check,
)
from engine.margin.invoices import DistributorInvoice, InvoiceItem

__all__ = [
    "CLASSES",
    "CLASS_LABELS",
    "CurrencyTotals",
    "CustomerMargin",
    "DistributorInvoice",
    "InvoiceItem",
    "MarginReport",
    "MarginRow",
    "MarginSettings",
    "Mark",
    "margin_percent",
    "three_way_check",
]
