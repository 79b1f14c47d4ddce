"""Finding codes (RULES.md §8): what is wrong, about what, and what clears it."""

from __future__ import annotations

from engine.plan import Finding, Severity

# code -> (severity, what clears it). The keys named are the console's defaults; the console's own
# table (tui/screens/fixes.py FIXES) names them after the operator's keymap.
CODES: dict[str, tuple[Severity, str]] = {
    "company_not_mapped": (
        "error",
        "Map the vendor company to a PSA company (m), or create it in the PSA and map it (N).",
    ),
    "product_not_bound": (
        "error",
        "Bind the vendor product to a PSA product (Products: b), or create it in the PSA (Products: N).",
    ),
    "no_active_agreement": ("error", "Create an active agreement for the customer in the PSA, then refresh."),
    "multiple_active_agreements": (
        "warning",
        "The newest agreement is used; pick one for the customer (A), or end the others in the PSA.",
    ),
    "billing_period_mismatch": (
        "error",
        "Pick an agreement whose billing period matches the subscription's term (A), or add one in the PSA.",
    ),
    "mixed_editions": ("error", "Keep offering items of one edition only for this customer."),
    "locations_differ": ("error", "Put backup and disaster recovery on the same storage location."),
    "geo_redundancy_without_parent": (
        "error",
        "Add the parent storage item to the agreement, or remove the geo item.",
    ),
    "no_product_to_sync": (
        "error",
        "Add a line for the product to the customer's agreement in the PSA, or mark the product free (f).",
    ),
    "usage_pending": (
        "warning",
        "Wait for the vendor's final figures (day 3 for endpoints, day 5 for usage).",
    ),
    "duplicate_mapping": (
        "error",
        "Unmap all but one (u): a vendor company maps to exactly one PSA company.",
    ),
    "price_missing": ("warning", "Configure the price and cost for the product in the vendor console."),
    "credit_due": (
        "warning",
        "Issue the credit in the PSA by hand (trueup never writes credits), then acknowledge it (k).",
    ),
    "billing_mode_invalid": (
        "error",
        "Use the 'total' mode when licences and storage share a configuration.",
    ),
    "override_ignored": ("warning", "Edit the line's effective date again (e), or clear it (X)."),
    "duplicate_line": (
        "error",
        "End or delete all but one of the PSA lines that carry this key, then refresh.",
    ),
    # Commitment terms (issue 15, engine.rules.commitments)
    "seats_reducible_until": (
        "warning",
        "Remove the seats in the vendor portal before that instant if the customer does not keep them.",
    ),
    "renewal_window_open": (
        "warning",
        "Reduce or cancel at the vendor before the window closes, or let it renew.",
    ),
    "renewal_in_n_days": (
        "warning",
        "Decide the renewal quantity before the window closes (trueup renewals).",
    ),
    "commitment_cost_continues": (
        "warning",
        "Keep billing the customer until the term ends, or accept the cost; the vendor will not refund it.",
    ),
    "seats_reducible_at_renewal": ("warning", "Reduce the vendor quantity when the renewal window opens."),
    # Leak rules (issue 14, engine.rules.leaks).
    "vendor_subscription_gone": (
        "error",
        "Sync the proposed cancel of the PSA line, or restore the subscription at the vendor.",
    ),
    "price_below_cost": ("error", "Raise the PSA line's price above the vendor's cost, or bind a price."),
    "vendor_price_changed": (
        "warning",
        "Sync the proposed price line (setting price_change_policy), or ignore it to keep the PSA price.",
    ),
}


def finding(code: str, subject: dict[str, str], message: str) -> Finding:
    severity, hint = CODES[code]
    return Finding(code=code, severity=severity, subject=subject, message=message, hint=hint)


def finding_key(f: Finding) -> str:
    """A finding's stable key (code and subject): what an acknowledgement is recorded against."""
    return f.code + "|" + "|".join(f"{k}={v}" for k, v in sorted(f.subject.items()))
