"""Plan keys: the one place they are built and read.

A plan line is identified across runs, the journal, the store and the PSA by its key
`<subject>:<kind>[:<argument>]` (RULES.md, engine/rules):

* `subject`: the subscription id (or a backup billing configuration id), never containing `:`;
* `kind`: what the line bills (`KINDS`); `price` updates a seat line's unit price and cost;
* `argument`: what tells two lines of that kind apart: a prorate's day (`2026-02-10`), an
  extra-months run's first month (`2026-01`), an arrears line's sub-product or usage label.

Ignores are keyed by a plan key or by a bare subject id; `subject_of` reads the subject of either.
A change set (RULES.md §3) is `<subscription>:changes` (`change_set_key`): it groups lines and is no
plan key. The connectors keep only how a key is stored in their own field (ConnectWise's and
HaloPSA's `KeyCodec`, Autotask's markers); what a key *means* is read here."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Literal, get_args

from engine.months import month_key

if TYPE_CHECKING:
    from engine.scenario import LineSource

KeyKind = Literal[
    "recurring", "cancel", "prorate", "extra_months", "arrears", "usage_summary", "usage", "price"
]
KINDS: tuple[KeyKind, ...] = get_args(KeyKind)
_KIND: dict[str, KeyKind] = {kind: kind for kind in KINDS}

# The subject is everything before the first `:`; the kind is one of KINDS (longest first, so that
# `usage_summary` is not read as `usage`); a non-empty argument may hold further `:`.
_KEY_RE = re.compile(
    r"^(?P<subject>[^:]+)"
    r":(?P<kind>" + "|".join(sorted(KINDS, key=len, reverse=True)) + r")"
    r"(?::(?P<argument>.+))?$",
    re.DOTALL,
)


@dataclass(frozen=True, slots=True)
class PlanKey:
    """A plan key, parsed. `str(key)` / `key.format()` gives the stored text."""

    subject: str
    kind: KeyKind
    argument: str | None = None

    def format(self) -> str:
        base = f"{self.subject}:{self.kind}"
        return base if self.argument is None else f"{base}:{self.argument}"

    def __str__(self) -> str:
        return self.format()

    @classmethod
    def parse(cls, key: str) -> PlanKey | None:
        """The parts of a plan key, or None when `key` is not one (a bare subscription id, another
        tool's text, a digest the codec does not know)."""
        match = _KEY_RE.match(key)
        if match is None:
            return None
        return cls(match["subject"], _KIND[match["kind"]], match["argument"])

    @property
    def sub_product(self) -> str | None:
        """The arrears sub-product (or usage label) the key names; None for every other kind."""
        return self.argument if self.kind == "arrears" else None

    # --- the keys the rules write -------------------------------------------------------------------

    @classmethod
    def recurring(cls, subscription: str) -> PlanKey:
        return cls(subscription, "recurring")

    @classmethod
    def cancel(cls, subscription: str) -> PlanKey:
        return cls(subscription, "cancel")

    @classmethod
    def price(cls, subscription: str) -> PlanKey:
        """A seat line's price (and cost) update after a vendor price change (engine.rules.leaks).
        Like `recurring`, it updates the PSA line the subscription's recurring key is stored on and
        is in sync when that line holds the proposed prices; so it needs no argument."""
        return cls(subscription, "price")

    @classmethod
    def prorate(cls, subscription: str, day: date | str) -> PlanKey:
        """`day`: the increase's effective date (a date, or its ISO text as the store holds it)."""
        return cls(subscription, "prorate", day if isinstance(day, str) else day.isoformat())

    @classmethod
    def extra_months(cls, subscription: str, first_month: date) -> PlanKey:
        return cls(subscription, "extra_months", month_key(first_month))

    @classmethod
    def arrears(cls, subscription: str, label: str) -> PlanKey:
        return cls(subscription, "arrears", label)

    @classmethod
    def usage(cls, subject: str) -> PlanKey:
        """A quota subscription's or a backup billing configuration's usage line."""
        return cls(subject, "usage")

    @classmethod
    def usage_summary(cls, subscription: str) -> PlanKey:
        return cls(subscription, "usage_summary")


def subject_of(key: str) -> str:
    """The subscription (or billing configuration) a plan key or an ignore's key is about: the text
    before the first `:` (the whole key when it is a bare id)."""
    return key.split(":", 1)[0]


def change_set_key(subscription: str) -> str:
    """The change set of a seat subscription's recurring update, prorates and extra months."""
    return f"{subscription}:changes"


def line_source(key: str | None) -> LineSource | None:
    """What a PSA line's stored key says about its source: the subscription and the arrears
    sub-product of a plan key; the key alone when it is not one (another tool's text kept as read)."""
    from engine.scenario import LineSource  # here, so that reading a key needs no pydantic

    if key is None:
        return None
    parsed = PlanKey.parse(key)
    if parsed is None:
        return LineSource(key=key)
    return LineSource(subscription_id=parsed.subject, sub_product=parsed.sub_product, key=key)


def kind_of(key: str | None) -> KeyKind | None:
    """The kind of a plan key; None for anything else."""
    parsed = PlanKey.parse(key) if key else None
    return parsed.kind if parsed else None
