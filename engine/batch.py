"""Helpers for building many objects at once (store loads, big plans)."""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:  # not imported at run time: `gc_paused` is used before the first paint
    from pydantic import BaseModel

M = TypeVar("M", bound="BaseModel")


class _MaybeProvisional(Protocol):
    @property
    def provisional(self) -> bool: ...


L = TypeVar("L", bound=_MaybeProvisional)
_new = object.__new__
_set = object.__setattr__
_FIELDS: dict[type[BaseModel], tuple[set[str], bool]] = {}  # the fields, and whether instances share them
_frozen = False  # has `freeze_long_lived` run in this process


def fast(cls: type[M], data: dict[str, Any]) -> M:
    """A pydantic instance from already-valid data, without validation (several times cheaper than
    `model_construct`). `data` must hold every field.

    Instances of a frozen model share one fields-set: pydantic never changes a frozen instance's set
    in place (assignment is refused, `model_copy` copies the set first), and a set of a dozen names
    per instance is most of the memory of a big load (≈700 bytes each, 250,000 instances)."""
    spec = _FIELDS.get(cls)
    if spec is None:
        spec = _FIELDS[cls] = (set(cls.model_fields), bool(cls.model_config.get("frozen")))
    fields, shared = spec
    obj = _new(cls)
    _set(obj, "__dict__", data)
    _set(obj, "__pydantic_fields_set__", fields if shared else set(fields))
    _set(obj, "__pydantic_extra__", None)
    _set(obj, "__pydantic_private__", None)
    return obj


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while hundreds of thousands of acyclic objects are built:
    otherwise every generation-2 pass rescans them all and dominates the load.

    On the way out, the objects built meanwhile go straight to the oldest generation (`gc.freeze()`
    then `gc.unfreeze()`, which moves them without examining them): left in the youngest, the first
    allocation afterwards would start a collection that examines every one of them (≈0.3 s per
    block at 50,000 subscriptions). Skipped when objects are frozen already (the console freezes its
    data on purpose, `freeze_long_lived`): unfreezing would hand those back to the collector."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            if not _frozen:
                gc.freeze()
                gc.unfreeze()
            gc.enable()


def freeze_long_lived() -> None:
    """Every object alive now is long-lived (the console's rows and plan): hand them to the
    permanent generation, which the cyclic collector never scans, and remember it, so `gc_paused`
    never unfreezes them. Remembered here rather than asked: `gc.get_freeze_count()` walks the
    permanent generation one object at a time (≈ 30 ms per call with a 50,000-subscription plan
    frozen, three calls an action before this)."""
    global _frozen
    _frozen = True
    gc.freeze()


def hold_provisional(lines: Iterable[L], include_provisional: bool) -> tuple[list[L], list[L]]:
    """The lines a sync writes, and the provisional ones it holds back (issue 13): usage whose
    period is not final yet (RULES.md §5, summaries before day 5) is written only when the
    operator includes it on purpose. (to write, held), each in the given order."""
    write: list[L] = []
    held: list[L] = []
    for line in lines:
        (held if line.provisional and not include_provisional else write).append(line)
    return write, held
