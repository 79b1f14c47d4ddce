"""The deterministic demo MSP: the data the sandbox services start with.

`build_demo_scenario()` returns one believable managed-service provider as a `Scenario`: about 40
customers (dental practices, law firms, manufacturers, nonprofits…) with about 400 subscriptions —
Microsoft 365 seats, Proofpoint Essentials endpoint counts, Azure plan usage summaries,
Acronis-style quota items and managed-backup billing configurations — 18 months of history, a PSA
(ConnectWise by default) holding what was synced before, and the mappings between the two.

Most subscriptions are in sync; a realistic minority carries recent, unsynced changes, and a handful
of *story customers* (`DEMO_CUSTOMERS`) each exercise one billing rule or mapping error of
shared/RULES.md. `DEMO_STORIES` says, for each, what the plan must contain as of the default
`as_of` (2026-11-21, invoiced through 2026-11-30, so every line this sync writes takes effect on
2026-12-01).

Everything is derived from `random.Random(seed)` in a fixed order, and every date is relative to
`as_of`: the same arguments always give the same scenario. `scale=N` builds the same shapes at N
subscriptions (≈N/25 customers, ≈10 history rows per subscription) for load tests; that path skips
pydantic validation (`model_construct`), the default path validates the whole scenario.
"""

from __future__ import annotations

import gc
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal, TypeVar

from pydantic import BaseModel

from engine.months import add_months, days_in_month, first_of_month, last_of_month, month_key
from engine.scenario import (
    AgreementMapping,
    BillingConfiguration,
    Commitment,
    CompanyMapping,
    HistoryRow,
    Ignore,
    LineSource,
    Mappings,
    ProductBinding,
    Psa,
    PsaAgreement,
    PsaCompany,
    PsaLine,
    PsaProduct,
    Scenario,
    SeatAddition,
    Settings,
    Subscription,
    SyncedKey,
    UsageRow,
    Vendor,
    VendorCompany,
    VendorProduct,
)

__all__ = [
    "DEMO_AS_OF",
    "DEMO_CUSTOMERS",
    "DEMO_PSA_INVOICE_LEAK",
    "DEMO_STORIES",
    "build_demo_psa_invoices",
    "build_demo_scenario",
]

DEMO_AS_OF = date(2026, 11, 21)

# The story customers: role -> vendor company name.
DEMO_CUSTOMERS: dict[str, str] = {
    "prorate_story": "Ace Chemical Processing Plant",
    "new_subscription": "Oxford Senior Living",
    "invoiced_in_advance": "Harborview Family Dental",
    "cancel_credit": "Lakeside Community Food Bank",
    "cancel_story": "Meridian Tool & Die, Inc.",
    "arrears_story": "1stwestinsurance.com",
    "usage_pending": "Pinecrest Veterinary Clinic",
    "usage_summary": "Summit Ridge Engineering",
    "billing_modes": "Keystone Precision Machining",
    "mixed_editions": "Cobalt Logistics Group",
    "locations_differ": "Brennan & Castillo LLP",
    "geo_without_parent": "Tidewater Title & Escrow",
    "duplicate_mapping": "Granite State Credit Union",
    "no_agreement": "Riverside Montessori School",
    "two_agreements": "Halvorsen Orthodontics",
    "annual_only": "Bluewater Yacht Services",
    "period_mismatch": "Carver & Sloane CPAs",
    "product_not_bound": "Dunmore Public Library",
    "not_mapped": "Sunrise Bakery & Café",
    "near_miss": "Westbrook Dental, P.C.",
    "near_miss_inc": "Alder & Finch Architects, Inc.",
    "near_miss_llc": "Quarry Hill Foods LLC",
    "billing_config": "Pemberton Wealth Advisors",
    "price_missing": "Larkspur Veterinary Partners",
    "ignored_prorate": "Cedar Ridge Physical Therapy",
    "commitments": "Zephyr Cove Marine Supply",
}

# What the plan must contain for each story customer, as of 2026-11-21 with invoiced_through left to
# its default (2026-11-30): lines take effect on 2026-12-01. tests/sandbox/test_demo.py checks it.
DEMO_STORIES: dict[str, str] = {
    "prorate_story": (
        "Microsoft 365 Business Basic ($6.00/$5.10), PSA line at 270: 270→282 on 11/05 and 283 on 11/17 → "
        "recurring update to 283; prorate 11/05: 12 × $5.00 (25/30) = $60.00; prorate 11/17: 1 × $2.60 "
        "(13/30). Microsoft 365 Business Standard ($12.50/$10.63), line at 10: 10→8 on 11/03, →11 on "
        "11/20 → recurring update to 11 and one threshold prorate 11/20: 1 × $4.17 (10/30), not 3. "
        "With invoiced_through=2026-12-31 Business Basic also gets extra_months 2026-12: 13 × $6.00."
    ),
    "new_subscription": (
        "Microsoft 365 E3 ($36.00/$30.60) ordered 11/04 (2 seats), +1 on 11/17, no PSA line → recurring "
        "create 3 ($108.00) effective 12/01; prorate 11/04: 2 × $31.20 (26/30) = $62.40; prorate 11/17: "
        "1 × $15.60 (13/30)."
    ),
    "invoiced_in_advance": (
        "Microsoft 365 Business Premium ($22.00/$18.70), PSA line at 15, 15→18 on 09/14 never synced "
        "while October and November were invoiced at 15 → recurring update to 18; prorate 09/14: "
        "3 × $11.73 (16/30) = $35.19; extra_months 2026-10: 3 × $22.00 × 2 months = $132.00 "
        "(10/01–11/30)."
    ),
    "cancel_credit": (
        "Exchange Online (Plan 1), 12 seats, cancelled 10/15, PSA line still active → cancel line ending "
        "10/31; November was already invoiced: credit_due (never a credit line)."
    ),
    "cancel_story": (
        "Microsoft Defender for Business, 25 seats, cancelled 11/02 → cancel line ending 11/30; "
        "no credit_due (November is the last month billed)."
    ),
    "arrears_story": (
        "Proofpoint Essentials, day-19 snapshots; October: Business 17 (was 15), Advanced 4 (new). "
        "→ arrears Business update 17 × $3.00 = $51.00 on the existing line; arrears Advanced create "
        "4 × $4.50 = $18.00; both effective on the subscription's start date. The November snapshot "
        "(taken 11/19) is not billable before 12/03 and must be ignored."
    ),
    "usage_pending": (
        "Proofpoint Essentials with no October snapshot (billable since 11/03) → usage_pending; "
        "no arrears line."
    ),
    "usage_summary": (
        "Azure plan: October charges $1,284.37 / partner total $1,091.71; the PSA line holds "
        "September's $1,190.02 → usage_summary update, quantity 1, unit price $1,284.37, "
        "description ending '(Usage Summary)'. As of a day before the 5th the line is provisional."
    ),
    "billing_modes": (
        "Acronis per-workload items (RULES §6): workstations, metered line at 12, usage 14 → usage "
        "update 14; servers prepaid 5, usage 4 → nothing; backup storage prepaid 500 GB + metered line, "
        "usage 612 → metered line updated to 112; Microsoft 365 seats bound free → nothing; virtual "
        "machines, usage 3, no line and not free → no_product_to_sync."
    ),
    "mixed_editions": "Per-workload workstations and a per-gigabyte storage item → mixed_editions.",
    "locations_differ": (
        "Backup storage at US2 (Ashburn) but disaster recovery at US6 (Phoenix) → locations_differ."
    ),
    "geo_without_parent": (
        "Geo-redundant storage (copy of US2 backup storage) billed on the agreement, but no US2 backup "
        "storage item or line → geo_redundancy_without_parent."
    ),
    "duplicate_mapping": "Mapped to two PSA companies (main office and Nashua branch) → duplicate_mapping.",
    "no_agreement": "Mapped, but its only agreement ended 06/30 → no_active_agreement.",
    "two_agreements": (
        "Two active monthly agreements → multiple_active_agreements (warning); Business Standard 9→10 on "
        "11/09 → recurring update on the newest agreement ('Managed Services 2025 Renewal')."
    ),
    "annual_only": (
        "Only an annual agreement and only annual subscriptions, all in sync → no line, no finding."
    ),
    "period_mismatch": (
        "Annual Microsoft 365 E3 on a customer with only a monthly agreement → billing_period_mismatch."
    ),
    "product_not_bound": "Microsoft 365 Copilot is not bound to a PSA product → product_not_bound.",
    "not_mapped": "New customer with no PSA company yet → company_not_mapped.",
    "near_miss": "PSA has 'Westbrook Dental PC': a near-miss name, only suggested → company_not_mapped.",
    "near_miss_inc": "PSA has 'Alder & Finch Architects' → company_not_mapped (suggestion).",
    "near_miss_llc": "PSA has 'Quarry Hill Foods, L.L.C.' → company_not_mapped (suggestion).",
    "billing_config": (
        "Managed-backup billing configurations: 'Backup licences' (average: workstation + server licences)."
    ),
    "price_missing": (
        "Billing configurations 'Cloud backup - all in' (total: licences and storage mixed) and "
        "'M365 mailbox backup' (quantity only) whose product has no price or cost → price_missing."
    ),
    "ignored_prorate": (
        "Business Standard 14→16 on 11/12; its prorate is ignored until restored → recurring update "
        "to 16 only; the prorate is counted in totals.ignored."
    ),
    "commitments": (
        "Commitment terms (issue 15), built last so no other customer changes: Microsoft 365 Business "
        "Premium, annual term paid monthly, 20 → 22 seats at 14:05 UTC three days ago → "
        "seats_reducible_until (168 h later); Microsoft 365 E3, annual paid monthly, 12 → 10 on 11/12 "
        "outside its window → commitment_cost_continues; Exchange Online (Plan 1), annual paid up "
        "front, term ending in 10 days → renewal_in_n_days; Microsoft Teams Phone Standard, annual, "
        "window 30 days before its end (in 4 days) → renewal_window_open; Microsoft Defender for "
        "Business, three-year term, 25 seats, PSA cut to 22 by hand, its update ignored → "
        "seats_reducible_at_renewal; a monthly-term Business Basic decrease and a Microsoft 365 E5 "
        "trial raise none."
    ),
}

# --- catalogues -----------------------------------------------------------------------------------

D = Decimal


@dataclass(frozen=True, slots=True)
class _Seat:
    sku: str
    name: str
    price: Decimal
    cost: Decimal
    role: Literal["suite", "frontline", "addon", "security", "premium"]
    weight: int
    bound: bool = True


_SEATS: tuple[_Seat, ...] = (
    _Seat("MST-365-BB-NCE-M", "Microsoft 365 Business Basic", D("6.00"), D("5.10"), "suite", 30),
    _Seat("MST-365-BS-NCE-M", "Microsoft 365 Business Standard", D("12.50"), D("10.63"), "suite", 40),
    _Seat("MST-365-BP-NCE-M", "Microsoft 365 Business Premium", D("22.00"), D("18.70"), "suite", 40),
    _Seat("MST-O365-E1-NCE-M", "Office 365 E1", D("10.00"), D("8.50"), "suite", 6),
    _Seat("MST-O365-E3-NCE-M", "Office 365 E3", D("23.00"), D("19.55"), "suite", 8),
    _Seat("MST-365-E3-NCE-M", "Microsoft 365 E3", D("36.00"), D("30.60"), "suite", 10),
    _Seat("MST-365-E5-NCE-M", "Microsoft 365 E5", D("57.00"), D("48.45"), "suite", 3),
    _Seat("MST-365-F3-NCE-M", "Microsoft 365 F3", D("8.00"), D("6.80"), "frontline", 8),
    _Seat("MST-EXO-P1-NCE-M", "Exchange Online (Plan 1)", D("4.00"), D("3.40"), "frontline", 20),
    _Seat("MST-EXO-P2-NCE-M", "Exchange Online (Plan 2)", D("8.00"), D("6.80"), "frontline", 5),
    _Seat("MST-EXO-KSK-NCE-M", "Exchange Online Kiosk", D("2.00"), D("1.70"), "frontline", 6),
    _Seat("MST-EXO-ARC-NCE-M", "Exchange Online Archiving", D("3.00"), D("2.55"), "addon", 8),
    _Seat("MST-DFB-NCE-M", "Microsoft Defender for Business", D("3.00"), D("2.55"), "security", 18),
    _Seat(
        "MST-DFO-P1-NCE-M", "Microsoft Defender for Office 365 (Plan 1)", D("2.00"), D("1.70"), "security", 10
    ),
    _Seat("MST-DFE-P2-NCE-M", "Microsoft Defender for Endpoint P2", D("5.20"), D("4.42"), "security", 4),
    _Seat("MST-365-APB-NCE-M", "Microsoft 365 Apps for business", D("8.25"), D("7.01"), "addon", 8),
    _Seat("MST-365-APE-NCE-M", "Microsoft 365 Apps for enterprise", D("12.00"), D("10.20"), "addon", 5),
    _Seat("MST-TMS-ESS-NCE-M", "Microsoft Teams Essentials", D("4.00"), D("3.40"), "addon", 5),
    _Seat("MST-TMS-PHN-NCE-M", "Microsoft Teams Phone Standard", D("8.00"), D("6.80"), "addon", 8),
    _Seat("MST-TMS-RMP-NCE-M", "Microsoft Teams Rooms Pro", D("40.00"), D("34.00"), "premium", 2),
    _Seat("MST-PBI-PRO-NCE-M", "Power BI Pro", D("14.00"), D("11.90"), "addon", 9),
    _Seat("MST-VIS-P1-NCE-M", "Visio Plan 1", D("5.00"), D("4.25"), "addon", 4),
    _Seat("MST-VIS-P2-NCE-M", "Visio Plan 2", D("15.00"), D("12.75"), "addon", 5),
    _Seat("MST-PRJ-P1-NCE-M", "Project Plan 1", D("10.00"), D("8.50"), "addon", 3),
    _Seat("MST-PRJ-P3-NCE-M", "Project Plan 3", D("30.00"), D("25.50"), "addon", 4),
    _Seat("MST-ENT-P1-NCE-M", "Microsoft Entra ID P1", D("6.00"), D("5.10"), "security", 8),
    _Seat("MST-ENT-P2-NCE-M", "Microsoft Entra ID P2", D("9.00"), D("7.65"), "security", 3),
    _Seat("MST-INT-P1-NCE-M", "Microsoft Intune Plan 1", D("8.00"), D("6.80"), "security", 7),
    _Seat("MST-SPO-P1-NCE-M", "SharePoint (Plan 1)", D("5.00"), D("4.25"), "frontline", 3),
    _Seat(
        "MST-W365-BS-2C8-M", "Windows 365 Business 2 vCPU, 8 GB, 128 GB", D("41.00"), D("34.85"), "premium", 3
    ),
    _Seat(
        "MST-D365-BCE-NCE-M", "Dynamics 365 Business Central Essentials", D("80.00"), D("68.00"), "premium", 2
    ),
    _Seat("KPR-BUS-M", "Keeper Business", D("3.75"), D("2.81"), "security", 10),
    _Seat("DRS-M365-BKP-M", "Dropsuite Backup for Microsoft 365", D("3.50"), D("2.10"), "security", 12),
    _Seat("DUO-ESS-M", "Cisco Duo Essentials", D("3.00"), D("2.40"), "security", 6),
    _Seat("ADB-ACP-TM-M", "Adobe Acrobat Pro for teams", D("23.99"), D("20.39"), "addon", 6),
    _Seat("HNT-EDR-M", "Huntress Managed EDR", D("5.00"), D("3.50"), "security", 8),
    # Not bound to a PSA product yet (product_not_bound): new in the catalogue.
    _Seat("MST-CPL-365-NCE-M", "Microsoft 365 Copilot", D("30.00"), D("25.50"), "premium", 0, bound=False),
    _Seat("MST-TMS-PRM-NCE-M", "Microsoft Teams Premium", D("10.00"), D("8.50"), "premium", 0, bound=False),
    _Seat("ZOM-WKP-PRO-M", "Zoom Workplace Pro", D("13.33"), D("11.33"), "addon", 0, bound=False),
)
_SEAT_BY_NAME = {s.name: s for s in _SEATS}
_PICKABLE = tuple(s for s in _SEATS if s.bound and s.weight > 0)
_SUITES = tuple(s for s in _PICKABLE if s.role == "suite")

_PROOFPOINT_PRICES = {
    "Business": (D("3.00"), D("2.44")),
    "Advanced": (D("4.50"), D("3.60")),
    "Pro": (D("6.50"), D("5.20")),
}

_US2 = "US2 (Ashburn, VA)"
_US6 = "US6 (Phoenix, AZ)"
_MBS = "Managed Backup Cloud (Dallas, TX)"


@dataclass(frozen=True, slots=True)
class _Quota:
    key: str
    sku: str
    name: str
    edition: str | None
    service: str
    location: str | None
    psa_name: str
    price: Decimal | None
    cost: Decimal | None
    free: bool = False
    parent: str | None = None


_QUOTAS: tuple[_Quota, ...] = (
    _Quota(
        "ws",
        "pw-base-workstations",
        "Workstations",
        "per_workload",
        "licence",
        None,
        "Acronis Cyber Protect - Workstation",
        D("12.00"),
        D("4.50"),
    ),
    _Quota(
        "sv",
        "pw-base-servers",
        "Servers",
        "per_workload",
        "licence",
        None,
        "Acronis Cyber Protect - Server",
        D("45.00"),
        D("18.00"),
    ),
    _Quota(
        "vm",
        "pw-base-vms",
        "Virtual machines",
        "per_workload",
        "licence",
        None,
        "Acronis Cyber Protect - Virtual Machine",
        D("30.00"),
        D("12.00"),
    ),
    _Quota(
        "m365",
        "pw-base-m365-seats",
        "Microsoft 365 seats",
        "per_workload",
        "licence",
        None,
        "Acronis M365 Backup - Seat",
        D("2.50"),
        D("1.00"),
        free=True,
    ),
    _Quota(
        "st2",
        "pw-base-storage-us2",
        "Backup storage - Acronis Hosted (US2)",
        "per_workload",
        "backup_storage",
        _US2,
        "Acronis Cloud Storage (GB)",
        D("0.20"),
        D("0.07"),
    ),
    _Quota(
        "st6",
        "pw-base-storage-us6",
        "Backup storage - Acronis Hosted (US6)",
        "per_workload",
        "backup_storage",
        _US6,
        "Acronis Cloud Storage West (GB)",
        D("0.20"),
        D("0.07"),
    ),
    _Quota(
        "dr2",
        "pw-base-dr-us2",
        "Disaster recovery storage (US2)",
        "per_workload",
        "disaster_recovery",
        _US2,
        "Acronis Disaster Recovery Storage (GB)",
        D("0.35"),
        D("0.14"),
    ),
    _Quota(
        "dr6",
        "pw-base-dr-us6",
        "Disaster recovery storage (US6)",
        "per_workload",
        "disaster_recovery",
        _US6,
        "Acronis Disaster Recovery Storage West (GB)",
        D("0.35"),
        D("0.14"),
    ),
    _Quota(
        "gr2",
        "pw-base-storage-gr-us2",
        "Geo-redundant storage (US2)",
        "per_workload",
        "geo_redundancy",
        _US2,
        "Acronis Geo-Redundant Storage (GB)",
        D("0.08"),
        D("0.03"),
        parent="st2",
    ),
    _Quota(
        "pgws",
        "pg-base-workstations",
        "Workstations (per gigabyte)",
        "per_gigabyte",
        "licence",
        None,
        "Acronis Cyber Protect - Workstation (per GB edition)",
        D("6.00"),
        D("2.00"),
    ),
    _Quota(
        "pgst",
        "pg-base-storage-us2",
        "Backup storage (per gigabyte) (US2)",
        "per_gigabyte",
        "backup_storage",
        _US2,
        "Acronis Cloud Storage - per GB edition",
        D("0.25"),
        D("0.09"),
    ),
    # Managed Backup Service products, billed through billing configurations (RULES §7).
    _Quota(
        "mbws",
        "mbs-workstation",
        "Managed Backup - Workstation licence",
        None,
        "licence",
        None,
        "Managed Backup - Workstation",
        D("14.00"),
        D("6.00"),
    ),
    _Quota(
        "mbsv",
        "mbs-server",
        "Managed Backup - Server licence",
        None,
        "licence",
        None,
        "Managed Backup - Server",
        D("55.00"),
        D("25.00"),
    ),
    _Quota(
        "mbst",
        "mbs-storage",
        "Managed Backup - Cloud storage (GB)",
        None,
        "backup_storage",
        _MBS,
        "Managed Backup - Cloud Storage",
        D("0.18"),
        D("0.06"),
    ),
    _Quota(
        "mbmx",
        "mbs-m365-mailbox",
        "Managed Backup - Microsoft 365 mailbox",
        None,
        "licence",
        None,
        "Managed Backup - M365 Mailbox",
        None,
        None,
    ),
)

_SURNAMES = (
    "Abernathy",
    "Albright",
    "Bancroft",
    "Beaumont",
    "Calloway",
    "Castellano",
    "Delgado",
    "Donnelly",
    "Eastwood",
    "Ellison",
    "Fairbanks",
    "Fitzgerald",
    "Gallagher",
    "Garrison",
    "Hadley",
    "Hargrove",
    "Ingram",
    "Jennings",
    "Kessler",
    "Kowalski",
    "Langford",
    "Lindqvist",
    "Maddox",
    "Marchetti",
    "Nakamura",
    "Novak",
    "Okafor",
    "Oyelaran",
    "Pellegrino",
    "Prescott",
    "Quintero",
    "Ramsey",
    "Rosales",
    "Sandoval",
    "Schaefer",
    "Sutherland",
    "Thornton",
    "Tran",
    "Underwood",
    "Valdez",
    "Vance",
    "Whitaker",
    "Winslow",
    "Yamamoto",
    "Yeager",
    "Zimmerman",
    "Brandt",
    "Chowdhury",
    "Duarte",
    "Esposito",
)
_PLACES = (
    "Harbor Point",
    "Cedar Hollow",
    "Lakeview",
    "Pine Bluff",
    "Riverbend",
    "Oak Meadow",
    "Stonebridge",
    "Willow Creek",
    "Maple Grove",
    "Northgate",
    "Eastfield",
    "Westhaven",
    "Silver Lake",
    "Fox Run",
    "Ironwood",
    "Blue Heron",
    "Copper Canyon",
    "Elmhurst",
    "Briarwood",
    "Sycamore",
    "Redwood",
    "Bayside",
    "Highland Park",
    "Millbrook",
    "Clearwater",
    "Aspen Ridge",
    "Falcon Crest",
    "Seaside",
    "Brookhaven",
    "Prairie View",
    "Glenwood",
    "Hillcrest",
    "Kingsport",
    "Meadowlark",
    "Old Town",
    "Cypress Point",
    "Granite Falls",
    "Sandpiper",
    "Timberline",
    "Wheatland",
)
_CITIES = (
    "Tulsa",
    "Boise",
    "Spokane",
    "Dayton",
    "Fresno",
    "Raleigh",
    "Omaha",
    "Knoxville",
    "Reno",
    "Tacoma",
    "Madison",
    "Savannah",
    "Lexington",
    "Albany",
    "Wichita",
    "Chattanooga",
    "Des Moines",
    "Portland",
)
_SAINTS = ("Brigid", "Michael", "Anne", "Joseph", "Francis", "Catherine", "Patrick", "Luke")
# (pattern, size range in employees)
_PATTERNS: tuple[tuple[str, tuple[int, int]], ...] = (
    ("{s} Family Dentistry", (6, 18)),
    ("{p} Dental Group", (10, 40)),
    ("{p} Pediatric Dentistry", (6, 20)),
    ("{p} Orthodontics", (5, 16)),
    ("{s} & {s2} LLP", (8, 60)),
    ("{s} Law Group", (5, 30)),
    ("{s}, {s2} & {s3}, P.C.", (10, 45)),
    ("{p} Precision Machining", (20, 120)),
    ("{s} Tool & Die", (15, 80)),
    ("{p} Plastics Inc.", (25, 150)),
    ("{p} Fabrication", (12, 70)),
    ("{s} Manufacturing Co.", (30, 180)),
    ("{p} Community Food Bank", (4, 20)),
    ("{p} Humane Society", (5, 25)),
    ("Friends of the {p} Library", (3, 10)),
    ("{p} Youth Soccer Association", (2, 8)),
    ("{p} Habitat for Humanity", (5, 20)),
    ("{s} & Associates CPAs", (6, 30)),
    ("{s} Tax & Accounting", (4, 15)),
    ("{p} Family Medicine", (10, 50)),
    ("{p} Physical Therapy", (6, 25)),
    ("{p} Veterinary Hospital", (8, 30)),
    ("{p} Chiropractic", (3, 10)),
    ("{s} Construction", (15, 90)),
    ("{p} Realty Group", (8, 40)),
    ("{s} Roofing & Siding", (10, 45)),
    ("{p} Property Management", (6, 30)),
    ("{p} Brewing Company", (10, 45)),
    ("{s}'s Hardware", (5, 20)),
    ("{p} Marina", (4, 15)),
    ("{p} Insurance Agency", (5, 25)),
    ("{s} Wealth Management", (6, 25)),
    ("{p} Federal Credit Union", (20, 110)),
    ("{p} Montessori School", (10, 40)),
    ("St. {saint}'s Parish", (3, 12)),
    ("{p} Christian Academy", (15, 60)),
    ("{s} Engineering", (10, 60)),
    ("{p} Surveying", (5, 20)),
    ("{s} Architects", (6, 30)),
    ("{p} Senior Living", (25, 140)),
    ("{s} Logistics", (20, 100)),
)
_AGREEMENT_NAMES = (
    "Complete Care",
    "Sentinel Comprehensive",
    "Managed Services - Monthly",
    "Proactive Plus",
    "Cloud Services - Monthly",
    "Essentials Plan",
    "All-Inclusive MSA",
)


# --- construction helpers -------------------------------------------------------------------------


_REQUIRED = object()
_SPECS: dict[type, tuple[dict[str, Any], tuple[tuple[str, Any], ...]]] = {}
_M = TypeVar("_M", bound=BaseModel)
_setattr = object.__setattr__


def _spec(cls: type[BaseModel]) -> tuple[dict[str, Any], tuple[tuple[str, Any], ...]]:
    template: dict[str, Any] = {}
    factories: list[tuple[str, Any]] = []
    for name, info in cls.model_fields.items():
        if info.default_factory is not None:
            template[name] = _REQUIRED
            factories.append((name, info.default_factory))
        elif info.is_required():
            template[name] = _REQUIRED
        else:
            template[name] = info.default
    spec = _SPECS[cls] = (template, tuple(factories))
    return spec


def _mk(cls: type[_M], **values: Any) -> _M:
    """A model without validation (what `model_construct` does, minus its per-call overhead, which
    matters at 50,000 subscriptions): the generator is trusted, and the default path validates the
    whole scenario at the end."""
    template, factories = _SPECS.get(cls) or _spec(cls)
    data = {**template, **values}
    for name, factory in factories:
        if name not in values:
            data[name] = factory()
    obj = cls.__new__(cls)
    _setattr(obj, "__dict__", data)
    _setattr(obj, "__pydantic_fields_set__", set(values))
    _setattr(obj, "__pydantic_extra__", None)
    _setattr(obj, "__pydantic_private__", None)
    return obj


@dataclass
class _Cust:
    id: str
    name: str
    employees: int
    psa_id: str | None = None
    agreement: str | None = None  # the agreement monthly lines go to
    annual_agreement: str | None = None
    synced_before: bool = True  # False: never synced (lines absent, no synced keys)
    products: set[str] = field(default_factory=set)  # vendor product ids it already has


class _Builder:
    def __init__(self, *, seed: int, as_of: date, psa: str, invoiced_through: date | None) -> None:
        self.rng = random.Random(seed)
        self.as_of = as_of
        self.month0 = first_of_month(as_of)
        self.prev_month = add_months(self.month0, -1)
        self.window_start = add_months(self.month0, -18)
        self.psa = psa
        self.invoiced_through = invoiced_through
        self.desc_limit = {"connectwise": 50, "halopsa": 255, "autotask": 200}[psa]
        base = {"connectwise": 0, "halopsa": 0, "autotask": 29_680_000}[psa]
        self._next = {
            "company": base + 101,
            "product": base + 601,
            "agreement": base + 201,
            "line": base + 8_001,
        }
        self.vendor_companies: list[VendorCompany] = []
        self.vendor_products: list[VendorProduct] = []
        self.subscriptions: list[Subscription] = []
        self.usage: list[UsageRow] = []
        self.configs: list[BillingConfiguration] = []
        self.psa_companies: list[PsaCompany] = []
        self.psa_products: list[PsaProduct] = []
        self.agreements: list[PsaAgreement] = []
        self.lines: list[PsaLine] = []
        self.map_companies: list[CompanyMapping] = []
        self.bindings: list[ProductBinding] = []
        self.map_agreements: list[AgreementMapping] = []
        self.synced: list[SyncedKey] = []
        self.ignored: list[Ignore] = []
        self.commitments: list[Commitment] = []
        self.names: set[str] = set(DEMO_CUSTOMERS.values())
        self.customers: dict[str, _Cust] = {}  # story role -> customer
        self.history_rows = 0
        self._qty: _QtyCache = _QtyCache()
        # Day tables over every date the generator can produce: ordinal -> date / 1st / last of month.
        self._base = (self.window_start - timedelta(days=1200)).toordinal()
        end = (as_of + timedelta(days=40)).toordinal()
        self._dates = [date.fromordinal(o) for o in range(self._base, end)]
        self._som = [d.replace(day=1).toordinal() for d in self._dates]
        self._eom = [last_of_month(d).toordinal() for d in self._dates]
        # products: vendor id and PSA product id by catalogue key
        self.seat_ids: dict[str, str] = {}
        self.seat_psa: dict[str, str] = {}
        self.quota_ids: dict[str, str] = {}
        self.quota_psa: dict[str, str] = {}
        self.proofpoint_id = ""
        self.proofpoint_psa = ""
        self.azure_id = ""
        self.azure_psa = ""
        self.msp_psa_products: list[tuple[str, str]] = []

    # ids ------------------------------------------------------------------------------------------

    def uid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def psa_id(self, kind: str) -> str:
        value = self._next[kind]
        self._next[kind] = value + 1
        return str(value)

    def q(self, n: int) -> Decimal:
        return self._qty[n]

    def desc(self, name: str) -> str:
        return f"Pax8 - {name}"[: self.desc_limit]

    # dates ----------------------------------------------------------------------------------------

    def story_day(self, months_back: int, day: int | Literal["last"]) -> date:
        """A day `months_back` months before as_of's month; a day not reached yet in the current month
        moves to the month before (so an early as_of still gives a valid history)."""
        month = add_months(self.month0, -months_back)
        d = month.replace(day=days_in_month(month) if day == "last" else min(day, days_in_month(month)))
        if d > self.as_of:
            month = add_months(month, -1)
            d = month.replace(day=days_in_month(month) if day == "last" else min(day, days_in_month(month)))
        return d

    def random_day(self, lo: date, hi: date) -> date:
        """A day in [lo, hi], biased towards the 1st and the last day of a month (the 31st, Feb 28…)."""
        return self._dates[self._rday(lo.toordinal(), hi.toordinal()) - self._base]

    def _rday(self, lo: int, hi: int) -> int:
        """`random_day` on ordinals (the hot path)."""
        span = hi - lo
        if span <= 0:
            return lo
        rand = self.rng.random
        o = lo + int(rand() * (span + 1))
        roll = rand()
        if roll < 0.10:
            o = self._som[o - self._base]
        elif roll < 0.20:
            o = self._eom[o - self._base]
        return lo if o < lo else hi if o > hi else o

    # catalogue ------------------------------------------------------------------------------------

    def build_catalogue(self) -> None:
        for seat in _SEATS:
            vid = self.uid()
            self.seat_ids[seat.name] = vid
            self.vendor_products.append(_mk(VendorProduct, id=vid, sku=seat.sku, name=seat.name, kind="seat"))
            if seat.bound or seat.name == "Microsoft 365 Copilot":  # Copilot is in the PSA catalogue, unbound
                pid = self.psa_id("product")
                psa_name = seat.name if self.rng.random() < 0.5 else f"{seat.name} (Monthly)"
                self.psa_products.append(
                    _mk(
                        PsaProduct,
                        id=pid,
                        name=psa_name,
                        sku=seat.sku,
                        unit_price=seat.price,
                        unit_cost=seat.cost,
                    )
                )
                if seat.bound:
                    self.seat_psa[seat.name] = pid
                    self.bindings.append(_mk(ProductBinding, vendor_product_id=vid, psa_product_id=pid))
        self.proofpoint_id = self.uid()
        self.vendor_products.append(
            _mk(
                VendorProduct,
                id=self.proofpoint_id,
                sku="PPT-ESS-M",
                name="Proofpoint Essentials",
                kind="endpoint_usage",
                sub_products=["Business", "Advanced", "Pro"],
            )
        )
        self.proofpoint_psa = self.psa_id("product")
        self.psa_products.append(
            _mk(PsaProduct, id=self.proofpoint_psa, name="Proofpoint Essentials - Email Security")
        )
        self.bindings.append(
            _mk(ProductBinding, vendor_product_id=self.proofpoint_id, psa_product_id=self.proofpoint_psa)
        )
        self.azure_id = self.uid()
        self.vendor_products.append(
            _mk(
                VendorProduct,
                id=self.azure_id,
                sku="MST-AZR-PLAN",
                name="Microsoft Azure Plan",
                kind="usage_summary",
            )
        )
        self.azure_psa = self.psa_id("product")
        self.psa_products.append(_mk(PsaProduct, id=self.azure_psa, name="Microsoft Azure - Consumption"))
        self.bindings.append(
            _mk(ProductBinding, vendor_product_id=self.azure_id, psa_product_id=self.azure_psa)
        )
        for item in _QUOTAS:
            vid = self.uid()
            self.quota_ids[item.key] = vid
        for item in _QUOTAS:
            self.vendor_products.append(
                _mk(
                    VendorProduct,
                    id=self.quota_ids[item.key],
                    sku=item.sku,
                    name=item.name,
                    kind="quota",
                    edition=item.edition,
                    service=item.service,
                    storage_location=item.location,
                    parent_product_id=self.quota_ids[item.parent] if item.parent else None,
                )
            )
            pid = self.psa_id("product")
            self.quota_psa[item.key] = pid
            self.psa_products.append(
                _mk(
                    PsaProduct,
                    id=pid,
                    name=item.psa_name,
                    sku=None,
                    unit_price=item.price,
                    unit_cost=item.cost,
                )
            )
            self.bindings.append(
                _mk(
                    ProductBinding,
                    vendor_product_id=self.quota_ids[item.key],
                    psa_product_id=pid,
                    free=item.free,
                )
            )
        for name, price, cost in (
            ("Managed Services - Per User", "95.00", "0"),
            ("Managed Services - Per Device", "45.00", "0"),
            ("Onsite Support - Hourly", "150.00", "0"),
            ("Domain Renewal - Annual", "25.00", "15.00"),
            ("Firewall Subscription - Annual", "480.00", "360.00"),
        ):
            pid = self.psa_id("product")
            self.psa_products.append(
                _mk(PsaProduct, id=pid, name=name, unit_price=D(price), unit_cost=D(cost))
            )
            self.msp_psa_products.append((pid, name))

    # companies ------------------------------------------------------------------------------------

    def filler_name(self) -> tuple[str, tuple[int, int]]:
        rng = self.rng
        for attempt in range(200):
            pattern, size = _PATTERNS[rng.randrange(len(_PATTERNS))]
            s1, s2, s3 = rng.sample(_SURNAMES, 3)
            name = pattern.format(s=s1, s2=s2, s3=s3, p=rng.choice(_PLACES), saint=rng.choice(_SAINTS))
            if attempt > 20:
                name = f"{name} of {rng.choice(_CITIES)}"
            if attempt > 60:
                name = f"{name} {attempt}"
            if name not in self.names:
                self.names.add(name)
                return name, size
        raise RuntimeError("could not find a fresh customer name")

    def company(
        self,
        name: str,
        employees: int,
        *,
        psa_name: str | None = "",
        mapped: bool = True,
        agreement: Literal["monthly", "annual", "none"] = "monthly",
        role: str | None = None,
        status: Literal["active", "inactive"] = "active",
    ) -> _Cust:
        """A vendor company, its PSA company (`psa_name` "" = same name, None = none), the mapping and
        an agreement."""
        cust = _Cust(id=self.uid(), name=name, employees=employees)
        self.vendor_companies.append(_mk(VendorCompany, id=cust.id, name=name, status=status))
        if psa_name is not None:
            cust.psa_id = self.psa_id("company")
            self.psa_companies.append(_mk(PsaCompany, id=cust.psa_id, name=psa_name or name))
            if mapped:
                self.map_companies.append(_mk(CompanyMapping, vendor_id=cust.id, psa_id=cust.psa_id))
            if agreement != "none":
                aid = self.agreement(cust.psa_id, agreement)
                if agreement == "monthly":
                    cust.agreement = aid
                else:
                    cust.annual_agreement = aid
                self.msp_line(aid, employees)
        if role is not None:
            self.customers[role] = cust
        return cust

    def agreement(
        self,
        psa_company: str,
        period: Literal["monthly", "annual"],
        *,
        name: str | None = None,
        start: date | None = None,
        end: date | None = None,
    ) -> str:
        aid = self.psa_id("agreement")
        if start is None:
            start = date(self.rng.randint(2016, 2024), self.rng.randint(1, 12), self.rng.randint(1, 28))
        if name is None:
            name = self.rng.choice(_AGREEMENT_NAMES) if period == "monthly" else "Annual Cloud Commitments"
        self.agreements.append(
            _mk(
                PsaAgreement,
                id=aid,
                company_id=psa_company,
                name=name,
                start_date=start,
                end_date=end,
                billing_period=period,
            )
        )
        return aid

    def msp_line(self, agreement: str, employees: int) -> None:
        """The MSP's own service line (not a vendor product): realistic noise the engine must leave alone."""
        pid, name = self.msp_psa_products[0 if self.rng.random() < 0.7 else 1]
        self.lines.append(
            _mk(
                PsaLine,
                id=self.psa_id("line"),
                agreement_id=agreement,
                product_id=pid,
                kind="recurring",
                quantity=self.q(employees),
                unit_price=D("95.00") if "User" in name else D("45.00"),
                unit_cost=D("0"),
                effective_date=date(2024, 1, 1),
                description=name,
            )
        )

    # seat subscriptions ---------------------------------------------------------------------------

    def seat(
        self,
        cust: _Cust,
        seat: _Seat,
        rows: list[tuple[date, int]],
        *,
        unsynced_from: date | None = None,
        term: Literal["monthly", "annual"] = "monthly",
        cancelled: bool = False,
        synced_before: bool | None = None,
        agreement: str | None = None,
        price: Decimal | None = None,
        cost: Decimal | None = None,
    ) -> Subscription:
        """A seat subscription from (date, quantity after) rows; `cancelled` makes the last row the
        cancellation. Rows before `unsynced_from` were synced: their prorate keys are in `synced[]` and
        the PSA line holds the quantity they left. (Hot path at scale: objects are built directly.)"""
        sub_id = self.uid()
        vid = self.seat_ids[seat.name]
        cust.products.add(vid)
        rows.sort()
        qd = self._qty
        history: list[HistoryRow] = []
        previous = 0
        last = len(rows) - 1
        for i, (d, qty) in enumerate(rows):
            if i == 0:
                action = "initial"
            elif cancelled and i == last:
                action, qty = "cancel", 0
            else:
                action = "increase" if qty > previous else "decrease"
            history.append(
                _raw(
                    HistoryRow,
                    _HISTORY_SET,
                    {"id": f"{sub_id}-h{i + 1}", "action": action, "quantity": qd[qty], "effective_date": d},
                )
            )
            previous = qty
        self.history_rows += len(history)
        start = rows[0][0]
        cancel_day = rows[-1][0] if cancelled else None
        unit_price = price if price is not None else seat.price
        unit_cost = cost if cost is not None else seat.cost
        sub = _mk(
            Subscription,
            id=sub_id,
            company_id=cust.id,
            product_id=vid,
            billing_term=term,
            start_date=start,
            end_date=cancel_day,
            unit_price=unit_price,
            unit_cost=unit_cost,
            status="cancelled" if cancelled else "active",
            cancelled_date=cancel_day,
            history=history,
        )
        self.subscriptions.append(sub)

        if synced_before is None:
            synced_before = cust.synced_before
        if not synced_before:
            return sub
        synced_rows = rows if unsynced_from is None else [r for r in rows if r[0] < unsynced_from]
        if not synced_rows:
            return sub
        prorated = _prorate_quantities(rows)
        rand = self.rng.random
        as_of = self.as_of
        dates, base = self._dates, self._base
        append = self.synced.append
        for d, _ in synced_rows:
            on = dates[d.toordinal() - base + int(rand() * 7)]
            append(
                _raw(
                    SyncedKey,
                    _SYNCED_SET,
                    {
                        "key": f"{sub_id}:prorate:{d.isoformat()}",
                        "quantity": qd[prorated.get(d, 0)],
                        "synced_on": on if on < as_of else as_of,
                        "psa_line_id": None,
                    },
                )
            )
        agreement = agreement or (cust.agreement if term == "monthly" else cust.annual_agreement)
        psa_product = self.seat_psa.get(seat.name)
        if agreement is None or psa_product is None:
            return sub
        billed = synced_rows[-1][1]
        cancel_synced = cancelled and len(synced_rows) == len(rows)
        if cancel_synced:
            billed = rows[-2][1] if len(rows) > 1 else rows[0][1]
        self.lines.append(
            _mk(
                PsaLine,
                id=self.psa_id("line"),
                agreement_id=agreement,
                product_id=psa_product,
                kind="recurring",
                quantity=qd[billed],
                unit_price=unit_price,
                unit_cost=unit_cost,
                effective_date=_next_month(start),
                cancelled_date=last_of_month(cancel_day) if cancel_synced and cancel_day else None,
                description=self.desc(seat.name),
                source=_mk(LineSource, subscription_id=sub_id),
            )
        )
        return sub

    def random_seat(self, cust: _Cust, seat: _Seat, base_qty: int, *, quiet: bool = False) -> None:
        """A filler seat subscription with up to 18 months of history (≈10 rows); ~15% carry unsynced
        recent changes, ~3% are new this month or last, ~2% were cancelled (and synced) long ago."""
        rand = self.rng.random
        rday, dates, base = self._rday, self._dates, self._base
        as_of = self.as_of.toordinal()
        month0 = self.month0.toordinal()
        prev = self.prev_month.toordinal()
        roll = 0.5 if quiet else rand()
        net_new = roll < 0.03 and self.as_of.day > 1
        unsynced = not net_new and roll < 0.14
        cancel = not net_new and not unsynced and roll > 0.98
        if net_new:
            start = rday(prev if rand() < 0.3 else month0, as_of)
            rows = [(dates[start - base], base_qty)]
            if rand() < 0.4 and start < as_of:
                rows.append((dates[rday(start + 1, as_of) - base], base_qty + 1 + int(rand() * 3)))
            self.seat(cust, seat, rows, unsynced_from=rows[0][0])
            return
        latest = (prev - 1) if (unsynced or cancel) else (as_of - 1)
        start = rday(self.window_start.toordinal(), min(latest, month0 - 75))
        n_changes = 3 + int(rand() * 14)
        seen = {start}
        for _ in range(n_changes):
            seen.add(rday(start + 1, latest))
        days = sorted(seen)
        qty = base_qty
        rows = [(dates[start - base], qty)]
        step_max = max(1, base_qty // 8)
        for o in days[1:]:
            if rand() < 0.62 or qty <= 1:
                qty += 1 + int(rand() * step_max)
            else:
                qty = max(1, qty - 1 - int(rand() * min(step_max, qty - 1)))
            rows.append((dates[o - base], qty))
        unsynced_from = None
        if unsynced:
            kind = rand()
            step = 1 + int(rand() * step_max)
            if kind < 0.55:  # increase this month
                o = rday(month0, as_of)
                rows.append((dates[o - base], qty + step))
            elif kind < 0.80:  # increase last month: this month was invoiced at the old quantity
                o = rday(prev, month0 - 1)
                rows.append((dates[o - base], qty + step))
            else:  # decrease this month
                o = rday(month0, as_of)
                rows.append((dates[o - base], max(1, qty - step)))
            unsynced_from = dates[o - base]
            if rand() < 0.25 and o < as_of and rows[-1][1] >= qty:
                o2 = rday(max(o + 1, month0), as_of)
                if o2 > o:
                    rows.append((dates[o2 - base], rows[-1][1] + 1 + int(rand() * 2)))
            rows = _dedupe(rows)
        if cancel:
            last_o = rows[-1][0].toordinal()
            if last_o < latest:
                rows.append((dates[rday(last_o + 1, latest) - base], 0))
            else:
                cancel = False
        self.seat(cust, seat, rows, unsynced_from=unsynced_from, cancelled=cancel)

    # arrears / usage ------------------------------------------------------------------------------

    def periods(self, start: date, months: int, *, include_current: bool = False) -> list[date]:
        """First days of the closed months (the last `months`) since `start`'s month."""
        last = self.month0 if include_current else self.prev_month
        out = []
        m = add_months(last, -(months - 1))
        while m <= last:
            if m >= first_of_month(start):
                out.append(m)
            m = add_months(m, 1)
        return out

    def usage_subscription(self, cust: _Cust, product_id: str, start: date) -> Subscription:
        """A subscription billed from usage rows (no seats, no price of its own)."""
        cust.products.add(product_id)
        sub = _mk(
            Subscription,
            id=self.uid(),
            company_id=cust.id,
            product_id=product_id,
            billing_term="monthly",
            start_date=start,
            unit_price=D("0"),
            unit_cost=D("0"),
            history=[],
        )
        self.subscriptions.append(sub)
        return sub

    def proofpoint(
        self,
        cust: _Cust,
        start: date,
        counts: dict[str, list[int | None]] | None = None,
        *,
        psa_period: date | None = None,
        months: int = 12,
    ) -> Subscription:
        """Proofpoint Essentials: one row per sub-product per month, snapshotted on day 19. `counts`
        gives each sub-product's counts for the months returned by `periods` (oldest first)."""
        rng = self.rng
        sub = self.usage_subscription(cust, self.proofpoint_id, start)
        sub_id = sub.id
        include_current = self.as_of.day >= 19
        periods = self.periods(start, months, include_current=include_current)
        if counts is None:
            counts = {}
            for sub_product, chance in (("Business", 1.0), ("Advanced", 0.3), ("Pro", 0.1)):
                if sub_product != "Business" and rng.random() >= chance:
                    continue
                seats = max(1, int(cust.employees * (0.9 if sub_product == "Business" else 0.2)))
                series: list[int | None] = []
                for _ in periods:
                    if rng.random() < 0.18:
                        seats = max(1, seats + rng.choice((-2, -1, 1, 1, 2)))
                    series.append(seats)
                counts[sub_product] = series
        for sub_product, series in counts.items():
            price, cost = _PROOFPOINT_PRICES[sub_product]
            for m, n in zip(periods[-len(series) :], series, strict=True):
                if n is None:
                    continue
                self.usage.append(
                    _mk(
                        UsageRow,
                        subscription_id=sub_id,
                        sub_product=sub_product,
                        period=month_key(m),
                        quantity=self.q(n),
                        unit_price=price,
                        unit_cost=cost,
                        snapshot_date=m.replace(day=19),
                    )
                )
        # The PSA holds what was synced last month: the period before the latest billable one.
        if psa_period is None:
            latest = add_months(self.month0, -1 if self.as_of.day >= 3 else -2)
            psa_period = add_months(latest, -1)
        if cust.agreement is not None and cust.synced_before:
            for sub_product, series in counts.items():
                by_month = dict(zip(periods[-len(series) :], series, strict=True))
                held = by_month.get(psa_period)
                if not held:
                    continue
                price, cost = _PROOFPOINT_PRICES[sub_product]
                self.lines.append(
                    _mk(
                        PsaLine,
                        id=self.psa_id("line"),
                        agreement_id=cust.agreement,
                        product_id=self.proofpoint_psa,
                        kind="recurring",
                        quantity=self.q(held),
                        unit_price=price,
                        unit_cost=cost,
                        effective_date=start,
                        description=f"{cust.name} - Proofpoint {sub_product}"[: self.desc_limit],
                        source=_mk(LineSource, subscription_id=sub_id, sub_product=sub_product),
                    )
                )
        return sub

    def azure(
        self, cust: _Cust, start: date, charges: list[int] | None = None, *, months: int = 12
    ) -> Subscription:
        """An Azure plan: one usage summary per closed month (charges in cents); the PSA line holds the
        month before the latest."""
        rng = self.rng
        sub = self.usage_subscription(cust, self.azure_id, start)
        sub_id = sub.id
        periods = self.periods(start, months)
        if charges is None:
            base = rng.randint(9_000, 420_000)
            charges = [base * rng.randint(85, 118) // 100 for _ in periods]
        pairs = list(zip(periods[-len(charges) :], charges, strict=True))
        for m, cents in pairs:
            price = _cents(cents)
            partner = _cents(cents * 85 // 100)
            self.usage.append(
                _mk(
                    UsageRow,
                    subscription_id=sub_id,
                    sub_product=None,
                    period=month_key(m),
                    quantity=self.q(1),
                    unit_price=price,
                    unit_cost=partner,
                    charges=price,
                    partner_total=partner,
                )
            )
        if cust.agreement is not None and cust.synced_before and len(pairs) >= 2:
            cents = pairs[-2][1]
            self.lines.append(
                _mk(
                    PsaLine,
                    id=self.psa_id("line"),
                    agreement_id=cust.agreement,
                    product_id=self.azure_psa,
                    kind="recurring",
                    quantity=self.q(1),
                    unit_price=_cents(cents),
                    unit_cost=_cents(cents * 85 // 100),
                    effective_date=first_of_month(add_months(start, 1)),
                    description=self.desc("Microsoft Azure Plan (Usage Summary)"),
                    source=_mk(LineSource, subscription_id=sub_id),
                )
            )
        return sub

    def quota(
        self,
        cust: _Cust,
        key: str,
        usage: int,
        *,
        previous: int | None = None,
        lines: tuple[tuple[int, bool], ...] = (),
        start: date | None = None,
    ) -> Subscription:
        """An Acronis-style offering item with this month's usage (and last month's) and the PSA lines
        (quantity, metered) the partner set up for its product."""
        item = next(i for i in _QUOTAS if i.key == key)
        sub_id = self.uid()
        vid = self.quota_ids[key]
        cust.products.add(vid)
        start = start or date(self.month0.year - 1, self.rng.randint(1, 12), 1)
        sub = _mk(
            Subscription,
            id=sub_id,
            company_id=cust.id,
            product_id=vid,
            billing_term="monthly",
            start_date=start,
            unit_price=item.price or D("0"),
            unit_cost=item.cost or D("0"),
            history=[],
        )
        self.subscriptions.append(sub)
        if previous is None:
            previous = max(0, usage + self.rng.randint(-2, 1))
        for m, n in ((self.prev_month, previous), (self.month0, usage)):
            self.usage.append(
                _mk(
                    UsageRow,
                    subscription_id=sub_id,
                    sub_product=None,
                    period=month_key(m),
                    quantity=self.q(n),
                    unit_price=item.price or D("0"),
                    unit_cost=item.cost or D("0"),
                )
            )
        if cust.agreement is not None:
            for quantity, metered in lines:
                self.lines.append(
                    _mk(
                        PsaLine,
                        id=self.psa_id("line"),
                        agreement_id=cust.agreement,
                        product_id=self.quota_psa[key],
                        kind="recurring",
                        quantity=self.q(quantity),
                        unit_price=item.price or D("0"),
                        unit_cost=item.cost or D("0"),
                        effective_date=start,
                        metered=metered,
                        description=item.psa_name
                        + (" - overage" if metered and any(not m for _, m in lines) else ""),
                    )
                )
        return sub

    # customers ------------------------------------------------------------------------------------

    def filler_seats(self, cust: _Cust, n: int, *, quiet: bool = False) -> int:
        """Add up to `n` seat subscriptions of distinct products (`quiet`: all in sync); returns how many."""
        rng = self.rng
        chosen: list[_Seat] = []
        suite = _weighted_pick(rng, [s for s in _SUITES if self.seat_ids[s.name] not in cust.products])
        if suite is not None:
            chosen.append(suite)
        pool = [s for s in _PICKABLE if s not in chosen and self.seat_ids[s.name] not in cust.products]
        keyed = sorted(pool, key=lambda s: rng.random() ** (1.0 / s.weight), reverse=True)
        chosen += keyed[: max(0, n - len(chosen))]
        chosen = chosen[:n]
        for seat in chosen:
            e = cust.employees
            if seat.role == "suite":
                base = max(1, int(e * rng.uniform(0.6, 1.0)))
            elif seat.role == "frontline":
                base = max(1, int(e * rng.uniform(0.1, 0.5)))
            elif seat.role == "security":
                base = max(1, int(e * rng.uniform(0.5, 1.0)))
            elif seat.role == "premium":
                base = rng.randint(1, max(1, e // 10))
            else:
                base = max(1, int(e * rng.uniform(0.05, 0.35)))
            self.random_seat(cust, seat, base, quiet=quiet)
        return len(chosen)

    def filler_customer(self, n_subs: int, *, unmapped: bool = False) -> None:
        rng = self.rng
        name, (lo, hi) = self.filler_name()
        employees = rng.randint(lo, hi)
        if unmapped:
            cust = self.company(
                name, employees, psa_name=None if rng.random() < 0.5 else _near_miss(name), mapped=False
            )
            cust.synced_before = False
        else:
            variant = rng.random() < 0.15
            cust = self.company(name, employees, psa_name=_near_miss(name) if variant else "")
        left = n_subs
        if left >= 4 and rng.random() < 0.35:
            self.proofpoint(
                cust,
                self.random_day(self.window_start - timedelta(days=400), self.month0 - timedelta(days=90)),
            )
            left -= 1
        if left >= 5 and rng.random() < 0.25:
            self.azure(
                cust,
                self.random_day(self.window_start - timedelta(days=300), self.month0 - timedelta(days=70)),
            )
            left -= 1
        if left >= 8 and rng.random() < 0.15:
            self.acronis_pack(cust)
            left -= 4
        self.filler_seats(cust, left)

    def acronis_pack(self, cust: _Cust) -> None:
        """Four per-workload items, all in sync (RULES §6 rows 1–4)."""
        rng = self.rng
        e = cust.employees
        ws = max(1, int(e * rng.uniform(0.6, 1.0)))
        sv = rng.randint(1, 4)
        st_key = "st2" if rng.random() < 0.7 else "st6"
        storage = (ws * 40 + sv * 300) * rng.randint(80, 120) // 100
        prepaid = (storage // 100 + rng.randint(-2, 3)) * 100
        self.quota(cust, "ws", ws, lines=((ws, True),))
        self.quota(cust, "sv", sv, lines=((sv + rng.randint(0, 1), False),))
        self.quota(cust, st_key, storage, lines=((prepaid, False), (max(0, storage - prepaid), True)))
        self.quota(cust, "m365", max(1, int(e * 0.9)))

    # the stories ----------------------------------------------------------------------------------

    def build_stories(self) -> None:
        d = self.story_day
        seat = _SEAT_BY_NAME
        rng = self.rng

        # §1/§2: updates with two prorates, and a threshold prorate.
        ace = self.company("Ace Chemical Processing Plant", 290, role="prorate_story")
        self.seat(
            ace,
            seat["Microsoft 365 Business Basic"],
            [(d(17, 1), 250), (d(11, 31), 262), (d(8, 16), 270), (d(0, 5), 282), (d(0, 17), 283)],
            unsynced_from=d(0, 5),
        )
        self.seat(
            ace,
            seat["Microsoft 365 Business Standard"],
            [(d(15, 11), 8), (d(9, 27), 10), (d(0, 3), 8), (d(0, 20), 11)],
            unsynced_from=d(0, 3),
        )
        self.seat(ace, seat["Microsoft Defender for Business"], [(d(16, 1), 40), (d(6, 28), 44)])

        # §2: a new subscription this month.
        oxf = self.company("Oxford Senior Living", 120, role="new_subscription")
        self.seat(oxf, seat["Microsoft 365 E3"], [(d(0, 4), 2), (d(0, 17), 3)], unsynced_from=d(0, 4))

        # §3: an increase two months ago, never synced: October and November were invoiced at 15.
        hfd = self.company("Harborview Family Dental", 22, role="invoiced_in_advance")
        self.seat(
            hfd,
            seat["Microsoft 365 Business Premium"],
            [(d(16, 1), 12), (d(9, 1), 15), (d(2, 14), 18)],
            unsynced_from=d(2, 14),
        )

        # §4: a cancellation last month (credit due) and one this month.
        lcf = self.company("Lakeside Community Food Bank", 14, role="cancel_credit")
        self.seat(
            lcf,
            seat["Exchange Online (Plan 1)"],
            [(d(14, 20), 10), (d(7, 2), 12), (d(1, 15), 0)],
            unsynced_from=d(1, 15),
            cancelled=True,
        )
        mtd = self.company(
            "Meridian Tool & Die, Inc.", 60, psa_name="Meridian Tool and Die", role="cancel_story"
        )
        self.seat(
            mtd,
            seat["Microsoft Defender for Business"],
            [(d(13, 9), 25), (d(0, 2), 0)],
            unsynced_from=d(0, 2),
            cancelled=True,
        )

        # §5: multi-product arrears, one subscription with no usage for the period, an Azure summary.
        fw = self.company("1stwestinsurance.com", 18, psa_name="1st West Insurance", role="arrears_story")
        n = len(self.periods(date(2000, 1, 1), 12, include_current=self.as_of.day >= 19))
        business: list[int | None] = [15] * n
        advanced: list[int | None] = [None] * n
        last_closed = n - (2 if self.as_of.day >= 19 else 1)  # index of the previous month
        business[last_closed] = 17
        advanced[last_closed] = 4
        if last_closed + 1 < n:  # this month's snapshot (day 19), not billable yet
            business[last_closed + 1] = 19
            advanced[last_closed + 1] = 5
        self.proofpoint(
            fw,
            add_months(self.month0, -28),
            {"Business": business, "Advanced": advanced},
            psa_period=add_months(self.prev_month, -1),
        )
        pvc = self.company("Pinecrest Veterinary Clinic", 16, role="usage_pending")
        counts: list[int | None] = [12] * n
        counts[last_closed] = None  # no snapshot for the period that is now billable
        if last_closed + 1 < n:
            counts[last_closed + 1] = None
        self.proofpoint(
            pvc,
            add_months(self.month0, -20),
            {"Business": counts},
            psa_period=add_months(self.prev_month, -1),
        )
        self.filler_seats(pvc, 3, quiet=True)
        sre = self.company("Summit Ridge Engineering", 45, role="usage_summary")
        charges = [rng.randint(95_000, 125_000) for _ in range(12)]
        charges[-2], charges[-1] = 119_002, 128_437
        self.azure(sre, self.story_day(14, 15), charges)

        # §6: every billing mode.
        kpm = self.company("Keystone Precision Machining", 38, role="billing_modes")
        self.quota(kpm, "ws", 14, previous=13, lines=((12, True),))
        self.quota(kpm, "sv", 4, previous=4, lines=((5, False),))
        self.quota(kpm, "st2", 612, previous=587, lines=((500, False), (0, True)))
        self.quota(kpm, "m365", 38, previous=37)
        self.quota(kpm, "vm", 3, previous=3)

        # §8: quota mapping errors.
        clg = self.company("Cobalt Logistics Group", 55, role="mixed_editions")
        self.quota(clg, "ws", 31, previous=31, lines=((31, True),))
        self.quota(clg, "pgst", 900, previous=880, lines=((1000, False),))
        bcl = self.company("Brennan & Castillo LLP", 26, role="locations_differ")
        self.quota(bcl, "sv", 2, previous=2, lines=((2, False),))
        self.quota(bcl, "st2", 750, previous=741, lines=((800, False), (0, True)))
        self.quota(bcl, "dr6", 120, previous=120, lines=((120, True),))
        tte = self.company("Tidewater Title & Escrow", 12, role="geo_without_parent")
        self.quota(tte, "ws", 11, previous=11, lines=((11, True),))
        self.quota(tte, "gr2", 310, previous=305, lines=((310, True),))

        # §8: company and agreement mapping errors.
        gsc = self.company("Granite State Credit Union", 70, role="duplicate_mapping")
        branch = self.psa_id("company")
        self.psa_companies.append(_mk(PsaCompany, id=branch, name="Granite State CU - Nashua Branch"))
        self.map_companies.append(_mk(CompanyMapping, vendor_id=gsc.id, psa_id=branch))
        self.filler_seats(gsc, 4, quiet=True)
        rms = self.company("Riverside Montessori School", 24, agreement="none", role="no_agreement")
        assert rms.psa_id is not None
        lapsed = self.agreement(
            rms.psa_id, "monthly", name="MSA 2023-2026", start=date(2023, 7, 1), end=self.story_day(5, "last")
        )
        rms.agreement = lapsed
        self.filler_seats(rms, 3, quiet=True)
        hor = self.company("Halvorsen Orthodontics", 11, role="two_agreements")
        assert hor.psa_id is not None
        hor.agreement = self.agreement(
            hor.psa_id,
            "monthly",
            name="Managed Services 2025 Renewal",
            start=date(self.month0.year - 1, 7, 1),
        )
        self.seat(
            hor,
            seat["Microsoft 365 Business Standard"],
            [(d(12, 4), 8), (d(5, 30), 9), (d(0, 9), 10)],
            unsynced_from=d(0, 9),
        )
        self.filler_seats(hor, 2, quiet=True)
        byc = self.company("Bluewater Yacht Services", 9, agreement="annual", role="annual_only")
        for name, qty, back in (
            ("Microsoft 365 Business Premium", 9, 10),
            ("Exchange Online (Plan 1)", 4, 7),
        ):
            s = seat[name]
            self.seat(
                byc, s, [(d(back, 1), qty)], term="annual", price=_annual(s.price), cost=_annual(s.cost)
            )
        csc = self.company("Carver & Sloane CPAs", 19, role="period_mismatch")
        e3 = seat["Microsoft 365 E3"]
        self.seat(
            csc,
            e3,
            [(d(3, 12), 6)],
            term="annual",
            price=_annual(e3.price),
            cost=_annual(e3.cost),
            synced_before=False,
        )
        self.filler_seats(csc, 3, quiet=True)
        dpl = self.company("Dunmore Public Library", 8, role="product_not_bound")
        self.seat(dpl, seat["Microsoft 365 Copilot"], [(d(1, 8), 2)], synced_before=False)
        self.filler_seats(dpl, 2, quiet=True)

        # §9: unmapped customers, one with no PSA company and three with near-miss names (new this month).
        for role, name, psa_name, employees in (
            ("not_mapped", "Sunrise Bakery & Café", None, 7),
            ("near_miss", "Westbrook Dental, P.C.", "Westbrook Dental PC", 15),
            ("near_miss_inc", "Alder & Finch Architects, Inc.", "Alder & Finch Architects", 12),
            ("near_miss_llc", "Quarry Hill Foods LLC", "Quarry Hill Foods, L.L.C.", 33),
        ):
            cust = self.company(name, employees, psa_name=psa_name, mapped=False, role=role)
            cust.synced_before = False
            start = self.story_day(0, 2 + len(self.customers) % 7)
            self.seat(cust, seat["Microsoft 365 Business Standard"], [(start, employees)])
            self.seat(cust, seat["Microsoft Defender for Business"], [(start, employees)])

        # §7: managed-backup billing configurations.
        pwa = self.company("Pemberton Wealth Advisors", 21, role="billing_config")
        ws = self.quota(pwa, "mbws", 22, previous=21)
        sv = self.quota(pwa, "mbsv", 3, previous=3)
        self.configs.append(
            _mk(
                BillingConfiguration,
                id=self.uid(),
                company_id=pwa.id,
                name="Backup licences",
                mode="average",
                subscription_ids=[ws.id, sv.id],
                psa_product_id=None,
            )
        )
        self.filler_seats(pwa, 3, quiet=True)
        lvp = self.company("Larkspur Veterinary Partners", 28, role="price_missing")
        ws = self.quota(lvp, "mbws", 17, previous=16)
        st = self.quota(lvp, "mbst", 1450, previous=1390)
        mx = self.quota(lvp, "mbmx", 26, previous=26)
        self.configs.append(
            _mk(
                BillingConfiguration,
                id=self.uid(),
                company_id=lvp.id,
                name="Cloud backup - all in",
                mode="total",
                subscription_ids=[ws.id, st.id],
                psa_product_id=None,
            )
        )
        self.configs.append(
            _mk(
                BillingConfiguration,
                id=self.uid(),
                company_id=lvp.id,
                name="M365 mailbox backup",
                mode="quantity_only",
                subscription_ids=[mx.id],
                psa_product_id=self.quota_psa["mbmx"],
            )
        )

        # §10: an ignored prorate.
        crp = self.company("Cedar Ridge Physical Therapy", 17, role="ignored_prorate")
        bs = self.seat(
            crp,
            seat["Microsoft 365 Business Standard"],
            [(d(10, 6), 12), (d(4, 1), 14), (d(0, 12), 16)],
            unsynced_from=d(0, 12),
        )
        self.ignored.append(
            _mk(
                Ignore,
                key=f"{bs.id}:prorate:{d(0, 12).isoformat()}",
                mode="until_restored",
                by="dana.whitfield",
                on=min(self.as_of, d(0, 12) + timedelta(days=1)),
                reason="Seats covered by the flat-rate bundle; no prorate.",
                fingerprint=None,
            )
        )
        self.filler_seats(crp, 2, quiet=True)

        # Realistic noise: an inactive vendor company, a few PSA-only companies.
        self.company("Old Mill Antiques", 3, status="inactive", agreement="none")
        for name in (
            "Bluewire Technology Partners (Internal)",
            "Kessler Orchards",
            "Northgate Animal Shelter",
        ):
            self.psa_companies.append(_mk(PsaCompany, id=self.psa_id("company"), name=name))

    # commitment terms (issue 15) ----------------------------------------------------------------

    def commitment(
        self,
        sub: Subscription,
        term: Literal["monthly", "annual", "two_year", "three_year", "trial"],
        end: date,
        *,
        before: int = 0,
        after: int = 7,
        added_at: time = time(14, 5),
    ) -> None:
        """The Pax8 `commitmentTerm` of `sub` and its product's commitment rules (NCE: no decrease,
        no early cancellation, auto-renew, 7 days after the term end), with a seat addition at
        `added_at` UTC on the day of every increase (the initial order included)."""
        additions = []
        previous = D(0)
        for row in sub.history:
            if row.quantity > previous:
                at = datetime.combine(row.effective_date, added_at, UTC)
                additions.append(_mk(SeatAddition, at=at, quantity=row.quantity - previous))
            previous = row.quantity
        self.commitments.append(
            _mk(
                Commitment,
                subscription_id=sub.id,
                term=term,
                end_date=end,
                auto_renew=True,
                window_days_before=before,
                window_days_after=after,
                allow_decrease=False,
                allow_early_cancellation=False,
                cancellation_fee=False,
                seat_additions=additions,
            )
        )

    def build_commitments_story(self) -> None:
        """Realistic terms on one customer (DEMO_STORIES["commitments"]), all relative to as_of."""
        seat = {s.name: s for s in _SEATS}
        as_of = self.as_of
        before = len(self.subscriptions)
        cust = self.company("Zephyr Cove Marine Supply", 24, role="commitments")
        assert cust.psa_id is not None
        cust.annual_agreement = self.agreement(cust.psa_id, "annual")

        def term_from(start: date, months: int) -> date:
            return add_months(start, months) - timedelta(days=1)

        # Annual term, paid monthly: two seats added three days ago, still inside their 168 hours.
        start = add_months(self.month0, -4)
        added = as_of - timedelta(days=3)
        bp = self.seat(
            cust, seat["Microsoft 365 Business Premium"], [(start, 20), (added, 22)], unsynced_from=added
        )
        self.commitment(bp, "annual", term_from(start, 12))
        # Annual term, paid monthly: a decrease this month, outside the window.
        start = add_months(self.month0, -8) + timedelta(days=9)
        dropped = as_of - timedelta(days=9)
        e3 = self.seat(cust, seat["Microsoft 365 E3"], [(start, 12), (dropped, 10)], unsynced_from=dropped)
        self.commitment(e3, "annual", term_from(start, 12))
        # Annual term, paid up front: it renews in 10 days.
        end = as_of + timedelta(days=10)
        start = add_months(end + timedelta(days=1), -12)
        exo = seat["Exchange Online (Plan 1)"]
        exo_sub = self.seat(
            cust, exo, [(start, 15)], term="annual", price=_annual(exo.price), cost=_annual(exo.cost)
        )
        self.commitment(exo_sub, "annual", end)
        # Annual term whose product opens the window 30 days before the term ends (in 4 days).
        end = as_of + timedelta(days=4)
        start = add_months(end + timedelta(days=1), -12)
        phone = self.seat(cust, seat["Microsoft Teams Phone Standard"], [(start, 6)])
        self.commitment(phone, "annual", end, before=30, after=0)
        # Three-year term: the customer uses 22 of 25 seats; the MSP bills 22 and ignores the update.
        start = add_months(self.month0, -14)
        dfb = self.seat(cust, seat["Microsoft Defender for Business"], [(start, 25)])
        self.commitment(dfb, "three_year", term_from(start, 36))
        line = self.lines[-1]
        self.lines[-1] = line.model_copy(update={"quantity": self.q(22)})
        self.ignored.append(
            _mk(
                Ignore,
                key=f"{dfb.id}:recurring",
                mode="until_restored",
                by="ops",
                on=as_of - timedelta(days=20),
                reason="Customer uses 22; 3 seats committed until renewal.",
                fingerprint=None,
            )
        )
        # Monthly term and a trial: none of the commitment findings.
        start = add_months(self.month0, -6)
        bb = self.seat(
            cust,
            seat["Microsoft 365 Business Basic"],
            [(start, 10), (as_of - timedelta(days=2), 8)],
            unsynced_from=as_of - timedelta(days=2),
        )
        self.commitment(bb, "monthly", last_of_month(as_of))
        start = as_of - timedelta(days=10)
        trial = self.seat(cust, seat["Microsoft 365 E5"], [(start, 5)], price=D(0), cost=D(0))
        self.commitment(trial, "trial", start + timedelta(days=29))
        assert len(self.subscriptions) - before == _COMMITMENT_STORY_SUBS

    # ----------------------------------------------------------------------------------------------

    def scenario(self) -> Scenario:
        return _mk(
            Scenario,
            as_of=self.as_of,
            settings=_mk(
                Settings,
                invoiced_through=self.invoiced_through,
                threshold_prorates=True,
                prorate_counts_change_day=False,
                psa=self.psa,
                description_prefix="Pax8",
            ),
            vendor=_mk(
                Vendor,
                companies=self.vendor_companies,
                products=self.vendor_products,
                subscriptions=self.subscriptions,
                usage=self.usage,
                billing_configurations=self.configs,
                commitments=self.commitments,
            ),
            psa=_mk(
                Psa,
                companies=self.psa_companies,
                products=self.psa_products,
                agreements=self.agreements,
                lines=self.lines,
            ),
            mappings=_mk(
                Mappings, companies=self.map_companies, products=self.bindings, agreements=self.map_agreements
            ),
            synced=self.synced,
            ignored=self.ignored,
            overrides=[],
        )


# --- small pure helpers ---------------------------------------------------------------------------


class _QtyCache(dict[int, Decimal]):
    """Quantities as shared `Decimal`s (immutable, so one object per value is enough)."""

    def __missing__(self, n: int) -> Decimal:
        value = self[n] = Decimal(n)
        return value


_HISTORY_SET = {"id", "action", "quantity", "effective_date"}
_SYNCED_SET = {"key", "quantity", "synced_on", "psa_line_id"}


def _raw(cls: type[_M], fields_set: set[str], data: dict[str, Any]) -> _M:
    """The hot path of `_mk`: `data` holds every field already."""
    obj = cls.__new__(cls)
    _setattr(obj, "__dict__", data)
    _setattr(obj, "__pydantic_fields_set__", fields_set)  # shared: frozen models never add to it
    _setattr(obj, "__pydantic_extra__", None)
    _setattr(obj, "__pydantic_private__", None)
    return obj


def _next_month(d: date) -> date:
    return date(d.year + 1, 1, 1) if d.month == 12 else date(d.year, d.month + 1, 1)


def _cents(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2)


def _annual(monthly: Decimal) -> Decimal:
    """An annual commitment's yearly price: ten months of the monthly-term price (NCE's ~20% discount)."""
    return monthly * 10


def _near_miss(name: str) -> str:
    """How the PSA tends to spell a name the vendor spells otherwise (suffix and punctuation)."""
    for old, new in (
        (" Inc.", ""),
        (" LLP", ", LLP"),
        (" Co.", " Company"),
        (", P.C.", " PC"),
        (" & ", " and "),
    ):
        if old in name:
            return name.replace(old, new)
    return f"{name}, Inc."


def _weighted_pick(rng: random.Random, pool: list[_Seat]) -> _Seat | None:
    if not pool:
        return None
    return rng.choices(pool, weights=[s.weight for s in pool])[0]


def _dedupe(rows: list[tuple[date, int]]) -> list[tuple[date, int]]:
    """One row per date (the last), in date order; consecutive equal quantities collapse."""
    by_day: dict[date, int] = {}
    for d, q in rows:
        by_day[d] = q
    out: list[tuple[date, int]] = []
    for d in sorted(by_day):
        if out and out[-1][1] == by_day[d]:
            continue
        out.append((d, by_day[d]))
    return out


def _prorate_quantities(rows: list[tuple[date, int]]) -> dict[date, int]:
    """Seats prorated per change date, with monthly high-water-mark thresholds (RULES §2)."""
    out: dict[date, int] = {}
    previous = 0
    mark = 0
    month = -1
    for d, qty in rows:
        m = d.year * 12 + d.month
        if m != month:
            month, mark = m, previous
        if qty > previous:
            out[d] = max(0, qty - mark)
            mark = max(mark, qty)
        previous = qty
    return out


def _allot(rng: random.Random, total: int, weights: list[float], cap: int) -> list[int]:
    """Split `total` across customers by weight, no customer above `cap`."""
    if not weights:
        return []
    wsum = sum(weights)
    out = [min(cap, int(total * w / wsum)) for w in weights]
    left = total - sum(out)
    i = 0
    guard = 0
    while left > 0 and guard < 10 * len(out) + total:
        j = i % len(out)
        if out[j] < cap:
            out[j] += 1
            left -= 1
        i += 1
        guard += 1
    return out


# --- public API -----------------------------------------------------------------------------------

_DEFAULT_CUSTOMERS = 40
_COMMITMENT_STORY_SUBS = 7  # the subscriptions build_commitments_story adds
_DEFAULT_SUBSCRIPTIONS = 400


def build_demo_scenario(
    *,
    seed: int = 7,
    as_of: date = DEMO_AS_OF,
    psa: str = "connectwise",
    scale: int | None = None,
    invoiced_through: date | None = None,
) -> Scenario:
    """The demo MSP as a `Scenario`, fully determined by the arguments.

    `scale`: build that many subscriptions (≈scale/25 customers, ≈10 history rows per seat
    subscription) without per-object validation, for load tests; it must leave room for the story
    customers (scale ≥ 150). `invoiced_through` (default None: the last day of as_of's month) is the
    scenario-wide setting of RULES §3.
    """
    if psa not in ("connectwise", "halopsa", "autotask"):
        raise ValueError(f"unknown PSA {psa!r}")
    # A million small objects at scale: the cyclic GC would rescan them all, over and over, for
    # nothing (the generator makes no cycles).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _build(seed=seed, as_of=as_of, psa=psa, scale=scale, invoiced_through=invoiced_through)
    finally:
        if gc_was_enabled:
            gc.enable()


def _build(*, seed: int, as_of: date, psa: str, scale: int | None, invoiced_through: date | None) -> Scenario:
    b = _Builder(seed=seed, as_of=as_of, psa=psa, invoiced_through=invoiced_through)
    b.build_catalogue()
    b.build_stories()
    if scale is None:
        n_customers, n_subs = _DEFAULT_CUSTOMERS, _DEFAULT_SUBSCRIPTIONS
    else:
        if scale < 150:
            raise ValueError("scale must be at least 150 (the story customers need room)")
        n_customers, n_subs = max(len(b.vendor_companies) + 1, round(scale / 25)), scale
    n_filler = max(0, n_customers - len(b.vendor_companies))
    remaining = max(0, n_subs - len(b.subscriptions))
    weights = [b.rng.uniform(0.4, 1.8) for _ in range(n_filler)]
    cap = len(_PICKABLE) + 3
    allotment = _allot(b.rng, remaining, weights, cap)
    # Room for the commitments story, built last: taken from the last filler customers only, so the
    # earlier ones (and every story) are what they were, and the total stays n_subs.
    room = _COMMITMENT_STORY_SUBS
    for j in range(len(allotment) - 1, -1, -1):
        take = min(room, allotment[j] - 1)
        allotment[j] -= take
        room -= take
    for i, n in enumerate(allotment):
        # A few unmapped new customers among the filler (import/suggestion material).
        b.filler_customer(n, unmapped=scale is not None and i % 25 == 24)
    # Seat filler tops up rounding losses (a customer may run out of distinct products).
    shortfall = n_subs - len(b.subscriptions) - _COMMITMENT_STORY_SUBS
    while shortfall > 0:
        name, (lo, hi) = b.filler_name()
        cust = b.company(name, b.rng.randint(lo, hi))
        added = b.filler_seats(cust, min(shortfall, len(_PICKABLE)))
        shortfall -= added
        if added == 0:
            break
    b.build_commitments_story()  # last: the rest of the demo is the same with or without it
    scenario = b.scenario()
    if scale is None:
        scenario = Scenario.model_validate(scenario.model_dump())
    return scenario


# --- the distributor's invoices (issue 14) --------------------------------------------------------
#
# `build_demo_invoices(scenario)` gives the Pax8 invoices of the 12 invoice months up to as_of's
# (the invoice of a month is dated its 5th; before the 5th the month has none yet), derived from
# the scenario's own history so that the three-way check ties out against it:
# * `subscription` items (term Monthly): every monthly seat subscription with a quantity in force on
#   the month's first day, quantity × unit cost, period = the month;
# * annual seat subscriptions (term Annual) in the month of their start date's anniversary;
# * `prorate` items (term Monthly) for each increase of the month before, by RULES §2's factor
#   (the change day not counted), period = the change day to that month's end (ASSUMED: Pax8
#   prorates every increase; the PSA side prorates above the month's high-water mark only);
# * arrears items (`subscription`, term Arrears): the usage rows of the month before, quantity ×
#   unit cost (usage summaries: quantity 1 at the partner total), period = that month.
# Every month but the latest is `Paid`. The latest was issued, credited and re-issued: the first
# issue (`Credited`) carries a wrong service charge; the re-issue (`Unpaid`, not final) does not.
# Planted on the latest month (DEMO_MARGIN_LEAKS; tests/margin/ holds each): a vendor price rise
# the PSA absorbed, a cost rise that eats the margin, and a partner service charge.

DEMO_MARGIN_LEAKS: dict[str, str] = {
    "not_billed_onward": (
        "Riverside Montessori School: its only agreement ended, Pax8 still charges 21 Business Basic seats."
    ),
    "billed_without_cost": (
        "Lakeside Community Food Bank: Exchange Online cancelled at Pax8 on 10/15, the PSA line still bills 12."
    ),
    "quantity_differs": "Harborview Family Dental: Pax8 invoices 18 Business Premium seats, the PSA bills 15.",
    "price_below_cost": "the first quiet Business Premium customer: Pax8's cost rose $18.70 → $23.10 over $22.00.",
    "margin_below_floor": "the second quiet Business Premium customer: cost $20.90 on $22.00 (5.0 %).",
    "timing": "last month's synced prorates: Pax8 charges them this month, the PSA billed them already.",
    "partner_charge": "a $25.00 Pax8 billing fee of no subscription.",
}
PRICE_RISE_COST = D("23.10")
FLOOR_BREACH_COST = D("20.90")


def _item(
    invoice_id: str,
    n: int,
    sub: Subscription,
    product: VendorProduct | None,
    *,
    type_: str,
    term: str,
    quantity: Decimal,
    cost: Decimal,
    price: Decimal,
    start: date,
    end: date,
    currency: str = "USD",
) -> Any:
    from engine.margin.invoices import InvoiceItem
    from engine.money import round_cents

    return InvoiceItem(
        id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"trueup-demo-item:{invoice_id}:{n}")),
        invoice_id=invoice_id,
        type=type_,
        company_id=sub.company_id,
        subscription_id=sub.id,
        product_id=sub.product_id,
        product_name=product.name if product else sub.product_id,
        start_period=start,
        end_period=end,
        quantity=quantity,
        price=price,
        cost=cost,
        cost_total=round_cents(quantity * cost),
        sub_total=round_cents(quantity * price),
        currency=currency,
        term=term,
    )


def latest_invoice_month(as_of: date) -> date:
    """The month of the distributor's latest invoice on `as_of`: it is issued on the 5th."""
    return first_of_month(as_of) if as_of.day >= 5 else add_months(first_of_month(as_of), -1)


def build_demo_invoices(scenario: Scenario, *, months: int = 12, plant: bool = True) -> list[Any]:
    """The distributor's invoices consistent with `scenario` (section comment above)."""
    from engine.margin.invoices import DistributorInvoice
    from engine.money import round_cents
    from engine.rules.quantities import Timeline

    as_of = scenario.as_of
    latest = latest_invoice_month(as_of)
    products = {p.id: p for p in scenario.vendor.products}
    timelines = {s.id: Timeline(s.history) for s in scenario.vendor.subscriptions}
    usage_by_period: dict[str, list[UsageRow]] = {}
    for row in scenario.vendor.usage:
        usage_by_period.setdefault(row.period, []).append(row)
    subs = {s.id: s for s in scenario.vendor.subscriptions}
    planted = _planted_subscriptions(scenario, latest, timelines) if plant else {}
    invoices: list[Any] = []
    for back in range(months - 1, -1, -1):
        first = add_months(latest, -back)
        last = last_of_month(first)
        previous = add_months(first, -1)
        invoice_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"trueup-demo-invoice:{month_key(first)}"))
        items: list[Any] = []
        for sub in scenario.vendor.subscriptions:
            product = products.get(sub.product_id)
            if product is None or product.kind != "seat":
                continue
            timeline = timelines[sub.id]
            quantity = timeline.at(first)
            annual = sub.billing_term == "annual"
            if (
                quantity > 0
                and sub.start_date <= first
                and (not annual or sub.start_date.month == first.month)
            ):
                cost = planted.get(sub.id, sub.unit_cost) if back == 0 else sub.unit_cost
                items.append(
                    _item(
                        invoice_id,
                        len(items),
                        sub,
                        product,
                        type_="subscription",
                        term="Annual" if annual else "Monthly",
                        quantity=quantity,
                        cost=cost,
                        price=sub.unit_price,
                        start=first,
                        end=last,
                    )
                )
            if annual:
                continue
            for change in timeline.changes:
                if change.after > change.before and previous <= change.on <= last_of_month(previous):
                    factor = Decimal((last_of_month(previous) - change.on).days) / days_in_month(previous)
                    unit_cost, unit_price = (
                        round_cents(sub.unit_cost * factor),
                        round_cents(sub.unit_price * factor),
                    )
                    if unit_cost == 0 and unit_price == 0:
                        continue
                    items.append(
                        _item(
                            invoice_id,
                            len(items),
                            sub,
                            product,
                            type_="prorate",
                            term="Monthly",
                            quantity=change.after - change.before,
                            cost=unit_cost,
                            price=unit_price,
                            start=change.on,
                            end=last_of_month(previous),
                        )
                    )
        for row in usage_by_period.get(month_key(previous), []):
            sub = subs[row.subscription_id]
            summary = row.partner_total is not None
            items.append(
                _item(
                    invoice_id,
                    len(items),
                    sub,
                    products.get(sub.product_id),
                    type_="subscription",
                    term="Arrears",
                    quantity=D(1) if summary else row.quantity,
                    cost=row.partner_total if summary and row.partner_total is not None else row.unit_cost,
                    price=row.charges if summary and row.charges is not None else row.unit_price,
                    start=previous,
                    end=last_of_month(previous),
                )
            )
        status = "Paid" if back else "Unpaid"
        if back == 0 and plant:
            from engine.margin.invoices import InvoiceItem

            items.append(
                InvoiceItem(
                    id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"trueup-demo-item:{invoice_id}:fee")),
                    invoice_id=invoice_id,
                    type="service-charge",
                    company_id=None,
                    subscription_id=None,
                    product_id=None,
                    product_name="Pax8 billing fee",
                    start_period=first,
                    end_period=last,
                    quantity=D(1),
                    price=D("25.00"),
                    cost=D("25.00"),
                    cost_total=D("25.00"),
                    sub_total=D("25.00"),
                    currency="USD",
                    term="One-Time",
                )
            )
            wrong_id = str(
                uuid.uuid5(uuid.NAMESPACE_URL, f"trueup-demo-invoice:{month_key(first)}:first-issue")
            )
            wrong_items = tuple(
                InvoiceItem(**{**_fields(item), "id": item.id + "-x", "invoice_id": wrong_id})
                for item in items
                if item.subscription_id is not None
            )
            invoices.append(
                DistributorInvoice(
                    id=wrong_id,
                    invoice_date=first.replace(day=4),
                    status="Credited",
                    total=sum((item.cost_total for item in wrong_items), D(0)) + D("250.00"),
                    currency="USD",
                    items=wrong_items,
                )
            )
        invoices.append(
            DistributorInvoice(
                id=invoice_id,
                invoice_date=first.replace(day=5),
                status=status,
                total=sum((item.cost_total for item in items), D(0)),
                currency="USD",
                items=tuple(items),
            )
        )
    return invoices


def _fields(item: Any) -> dict[str, Any]:
    return {name: getattr(item, name) for name in item.__slots__}


def _planted_subscriptions(scenario: Scenario, month: date, timelines: dict[str, Any]) -> dict[str, Decimal]:
    """Subscription id -> the planted unit cost of the latest invoice: two quiet Business Premium
    subscriptions (not a story customer's, PSA line at the invoiced quantity and price)."""
    stories = set(DEMO_CUSTOMERS.values())
    names = {c.id: c.name for c in scenario.vendor.companies}
    premium = {p.id for p in scenario.vendor.products if p.name == "Microsoft 365 Business Premium"}
    billed = {
        line.source.subscription_id: line
        for line in scenario.psa.lines
        if line.source is not None and line.source.subscription_id and line.kind == "recurring"
    }
    found: list[str] = []
    companies: set[str] = set()
    for sub in sorted(scenario.vendor.subscriptions, key=lambda s: s.id):
        line = billed.get(sub.id)
        if (
            sub.product_id in premium
            and names.get(sub.company_id) not in stories
            and sub.billing_term == "monthly"
            and sub.status == "active"
            and line is not None
            and line.cancelled_date is None
            and line.quantity == timelines[sub.id].at(month) > 0
            and line.unit_price == sub.unit_price
            and sub.start_date < month
            and sub.company_id not in companies
        ):
            found.append(sub.id)
            companies.add(sub.company_id)
        if len(found) == 2:
            break
    costs = (PRICE_RISE_COST, FLOOR_BREACH_COST)
    return dict(zip(found, costs, strict=False))


# --- what the PSA invoiced (issue 14 item 2) -----------------------------------------------------
# `build_demo_psa_invoices(scenario)` gives the PSA's invoices of the 12 months through as_of's
# month: each month the PSA invoiced exactly its lines in force (engine.margin.psa_invoices
# `invoice_lines_in_force`), one invoice per customer, but for one planted case only the invoiced
# read can catch: on the invoice of the distributor's latest invoice month (the month the check
# audits by default) of a quiet customer the PSA billed 2 seats fewer
# than its line in force says (`DEMO_PSA_SHORT_SEATS`), so the line-in-force check sees the seats
# matched and the invoiced check sees the quantity differ.

DEMO_PSA_INVOICE_LEAK = (
    "a quiet customer's latest PSA invoice bills 2 seats fewer than its line in force says: matched "
    "from the lines in force, quantity differs from the invoice."
)
DEMO_PSA_SHORT_SEATS = D(2)


def build_demo_psa_invoices(scenario: Scenario, *, months: int = 12, plant: bool = True) -> list[Any]:
    """The PSA's invoices consistent with `scenario` (section comment above)."""
    from engine.margin.psa_invoices import invoice_lines_in_force, past_months

    wanted = past_months(scenario.as_of, months)
    lines = invoice_lines_in_force(scenario, wanted)
    if not plant:
        return lines
    short = planted_short_invoice_line(scenario)
    if short is None:
        return lines
    latest = month_key(latest_invoice_month(scenario.as_of))  # the month the check audits
    out = []
    for line in lines:
        if line.month == latest and line.line_id == short:
            from dataclasses import replace

            from engine.money import round_cents

            quantity = line.quantity - DEMO_PSA_SHORT_SEATS
            line = replace(line, quantity=quantity, amount=round_cents(quantity * line.unit_price))
        out.append(line)
    return out


def planted_short_invoice_line(scenario: Scenario) -> str | None:
    """The PSA line whose latest invoice bills `DEMO_PSA_SHORT_SEATS` fewer seats: the first (by
    subscription id) quiet monthly seat subscription, not Business Premium (the invoice plants'
    product), whose one recurring line bills its quantity in force at its price, at least 5."""
    from engine.rules.quantities import Timeline

    month = latest_invoice_month(scenario.as_of)
    stories = set(DEMO_CUSTOMERS.values())
    names = {c.id: c.name for c in scenario.vendor.companies}
    seats = {p.id for p in scenario.vendor.products if p.kind == "seat" and "Premium" not in p.name}
    lines_of: dict[str, list[PsaLine]] = {}
    for line in scenario.psa.lines:
        if line.source is not None and line.source.subscription_id and line.kind == "recurring":
            lines_of.setdefault(line.source.subscription_id, []).append(line)
    for sub in sorted(scenario.vendor.subscriptions, key=lambda s: s.id):
        mine = lines_of.get(sub.id, [])
        if (
            sub.product_id in seats
            and names.get(sub.company_id) not in stories
            and sub.billing_term == "monthly"
            and sub.status == "active"
            and sub.start_date < month
            and len(mine) == 1
            and mine[0].cancelled_date is None
            and mine[0].unit_price == sub.unit_price
            and mine[0].quantity == Timeline(sub.history).at(month) >= 5
        ):
            return mine[0].id
    return None


def sandbox_psa_invoices(scenario: Scenario) -> list[Any]:
    """What a PSA sandbox seeded from `scenario` has invoiced: the demo's history, planted when the
    scenario is the demo MSP's (its story customers are there), else the lines in force of the 12
    months through as_of's month (as the Pax8 sandbox plants its invoices)."""
    names = {company.name for company in scenario.vendor.companies}
    return build_demo_psa_invoices(scenario, plant=DEMO_CUSTOMERS["prorate_story"] in names)
