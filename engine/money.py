"""Money arithmetic: `Decimal` only, rounded half-up to cents where RULES.md says so."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

CENT = Decimal("0.01")
ZERO = Decimal("0")


def round_cents(value: Decimal | Fraction) -> Decimal:
    """Round half-up to cents. A `Fraction` is rounded exactly (no intermediate precision loss)."""
    if isinstance(value, Fraction):
        hundredths = value * 100
        sign = -1 if hundredths < 0 else 1
        magnitude = abs(hundredths)
        whole, rest = divmod(magnitude.numerator, magnitude.denominator)
        if 2 * rest >= magnitude.denominator:
            whole += 1
        return (Decimal(sign * whole) / 100).quantize(CENT)
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def fraction(value: Decimal) -> Fraction:
    return Fraction(value)


def fmt_money(value: Decimal) -> str:
    """`$1,234.56` / `-$3.00`, for human output."""
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value).quantize(CENT):,}"


def fmt_quantity(value: Decimal) -> str:
    """Quantities print without trailing zeros: 12, 12.5."""
    normalized = value.normalize()
    if normalized == normalized.to_integral():
        return str(normalized.quantize(Decimal(1)))
    return format(normalized, "f")
