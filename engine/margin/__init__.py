"""The three-way check against the distributor's invoice (issue 14): the distributor's invoices, what
the PSA invoiced, the check, exports."""

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
from engine.margin.psa_invoices import PsaInvoiceLine

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
    "PsaInvoiceLine",
    "margin_percent",
    "three_way_check",
]
