"""The console's saved view and plan (engine.store.plan_cache holds them, opaque): how a launch
paints before anything is computed. Plain data, never pickle (the store may be a team's shared
database). No Textual here.

Two parts:
* The view — every pane's rows and the few names the panes show — is what the first paint
  needs, so it is laid out to decode in a fraction of a second at 50,000 rows: a JSON header,
  then each row field of a pane as one UTF-8 string joined by a separator (decoded by one
  `split`), rather than a JSON value per row.
* The plan — the plan itself, ignores, PSA lines, bindings — is restored after the paint, as
  JSON lines validated by the engine's own models, a few hundred at a time (so the screen keeps
  answering keys meanwhile)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from typing import Any, Generic, TypeVar

from engine.batch import gc_paused
from tui.rows import ConsoleData, Row

VIEW_FORMAT = "trueup-view/6"  # 3: rows carry company and state; 4: acknowledged warnings; 5: no search text (rebuilt from the row when a filter reads it); 6: the panes' column widths
PLAN_FORMAT = "trueup-plan/1"
_US, _RS = "\x1f", "\x1e"  # unit and record separators; a text holding one is not saved
_CHUNK = 500  # models validated per call while restoring the plan


class NotSaveable(ValueError):
    """A text holds a separator the saved view uses: this state is not saved (it is recomputed)."""


T = TypeVar("T")
V = TypeVar("V")


class _Memo(Generic[T, V]):
    """What the last encode computed per object, by identity (rows and the engine's models are
    frozen, so an object seen before encodes the same): a save after a per-customer recompute
    encodes only the objects that recompute made, the rest is reused. Holds the objects of the
    last encode only (the next one drops what it did not see)."""

    def __init__(self, make: Callable[[T], V]) -> None:
        self.make = make
        self.lock = threading.Lock()  # one encode at a time (saves run in worker threads)
        self._last: dict[int, tuple[T, V]] = {}
        self._now: dict[int, tuple[T, V]] = {}
        self.made = 0  # objects encoded afresh by the last encode (tests)

    def __call__(self, obj: T) -> V:
        hit = self._last.get(id(obj))
        if hit is not None and hit[0] is obj:
            value = hit[1]
        else:
            value = self.make(obj)
            self.made += 1
        self._now[id(obj)] = (obj, value)
        return value

    def begin(self) -> None:
        self._now, self.made = {}, 0

    def end(self) -> None:
        self._last, self._now = self._now, {}


_MODELS: _Memo[Any, bytes] = _Memo(lambda m: m.model_dump_json().encode("utf-8"))


def _checked(segment: str, items: int, sep: str = _US) -> str:
    """`segment` joined from `items` texts by `sep`: refused when a text held a separator (the
    separators are counted on the joined text, at C speed, instead of scanning each text)."""
    if segment.count(sep) != max(items - 1, 0) or (_RS in segment if sep == _US else _US in segment):
        raise NotSaveable("a row holds a control character (a unit or record separator)")
    return segment


def _encode_rows(rows: list[Row]) -> tuple[dict[str, Any], list[str]]:
    width = len(rows[0].cells) if rows else 0
    if any(len(r.cells) != width for r in rows):
        raise NotSaveable("rows of one pane differ in width")
    n = len(rows)
    line_keys = _RS.join([_US.join(r.line_keys) for r in rows])
    if line_keys.count(_RS) != max(n - 1, 0) or line_keys.count(_US) != sum(
        max(len(r.line_keys) - 1, 0) for r in rows
    ):
        raise NotSaveable("a plan key holds a control character (a unit or record separator)")
    segments = [
        _checked(_US.join([r.key for r in rows]), n),
        _checked(_US.join([c for r in rows for c in r.cells]), n * width),
        _checked(_US.join([r.detail for r in rows]), n),
        "".join(["1" if r.ignored else "0" for r in rows]),
        "".join(["1" if r.editable else "0" for r in rows]),
        _checked(_US.join([r.target or "" for r in rows]), n),
        line_keys,
        _checked(_US.join([r.company_id or "" for r in rows]), n),
        _checked(_US.join([r.status for r in rows]), n),
    ]
    return {"n": len(rows), "width": width}, segments


_new = object.__new__
_set_dict = object.__setattr__


def _decode_rows(meta: dict[str, Any], segments: list[str]) -> list[Row]:
    n, width = meta["n"], meta["width"]
    if n == 0:
        return []
    keys_s, cells_s, detail_s, ignored_s, editable_s, target_s, lines_s, company_s, status_s = segments
    keys = keys_s.split(_US)
    flat = cells_s.split(_US) if width else []
    cells = list(zip(*[iter(flat)] * width, strict=True)) if width else [()] * n
    details = detail_s.split(_US)
    targets = target_s.split(_US)
    line_keys = [tuple(x.split(_US)) if x else () for x in lines_s.split(_RS)]
    companies = company_s.split(_US)
    states = status_s.split(_US)
    if not (
        len(keys)
        == len(cells)
        == len(details)
        == len(targets)
        == len(line_keys)
        == len(ignored_s)
        == len(editable_s)
        == len(companies)
        == len(states)
        == n
    ):
        raise ValueError("saved view: pane columns differ in length")
    rows: list[Row] = []
    append = rows.append
    for key, cell, detail, ignored, editable, target, lines, company, status in zip(
        keys,
        cells,
        details,
        ignored_s,
        editable_s,
        targets,
        line_keys,
        companies,
        states,
        strict=True,
    ):
        row = _new(Row)  # a frozen dataclass, built without its __init__ (the same fields, checked above)
        _set_dict(
            row,
            "__dict__",
            {
                "key": key,
                "cells": cell,
                "detail": detail,
                "ignored": ignored == "1",
                "target": target or None,
                "line_keys": lines,
                "editable": editable == "1",
                "search": "",  # not saved: tui.rows.search_text rebuilds it when a filter reads it
                "company_id": company or None,
                "status": status,
            },
        )
        append(row)
    return rows


def encode_view(data: ConsoleData) -> bytes:
    """The saved view of `data` (raises NotSaveable when a text cannot be laid out)."""
    with gc_paused():
        return _encode_view(data)


def _encode_view(data: ConsoleData) -> bytes:
    panes: dict[str, Any] = {}
    segments: list[bytes] = []
    for which, source in (("rows", data.rows), ("ignored", data.ignored_rows)):
        for pane, rows in source.items():
            meta, texts = _encode_rows(rows)
            encoded = [x.encode("utf-8") for x in texts]
            meta["lengths"] = [len(x) for x in encoded]
            panes[f"{which}:{pane}"] = meta
            segments += encoded
    header = json.dumps(
        {
            "format": VIEW_FORMAT,
            "as_of": data.as_of.isoformat(),
            "invoiced_through": data.invoiced_through.isoformat(),
            "psa": data.psa,
            "company_names": data.company_names,
            "psa_companies": data.psa_companies,
            "agreement_names": data.agreement_names,
            "psa_products": data.psa_products,
            "psa_product_names": data.psa_product_names,
            "configuration_companies": data.configuration_companies,
            "acknowledged": data.acknowledged,
            "widths": data.widths,
            "panes": panes,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode("utf-8")
    return len(header).to_bytes(8, "big") + header + b"".join(segments)


def decode_view(blob: bytes) -> ConsoleData:
    """The rows of a saved view, as a ConsoleData whose plan is still to be restored (`complete`
    False, `plan` None until `restore_plan`). Raises ValueError on anything unexpected. Standard
    library only (with `tui.rows`): a launch decodes the view before the engine is imported."""
    size = int.from_bytes(blob[:8], "big")
    header = json.loads(blob[8 : 8 + size])
    if header.get("format") != VIEW_FORMAT:
        raise ValueError(f"saved view: unknown format {header.get('format')!r}")
    as_of = date.fromisoformat(header["as_of"])
    invoiced_through = date.fromisoformat(header["invoiced_through"])
    data = ConsoleData(
        # ConsoleData.plan is a Plan once `complete`; until restore_plan it is None, which its
        # readers check through `complete` (typing it `Plan | None` is not done yet: 33 readers):
        plan=None,  # type: ignore[arg-type]
        as_of=as_of,
        invoiced_through=invoiced_through,
        psa=header["psa"],
        complete=False,
    )
    data.company_names = header["company_names"]
    data.psa_companies = [(a, b) for a, b in header["psa_companies"]]
    data.psa_company_names = dict(data.psa_companies)
    data.agreement_names = header["agreement_names"]
    data.psa_products = [(a, b) for a, b in header["psa_products"]]
    data.psa_product_names = header["psa_product_names"]
    data.configuration_companies = header["configuration_companies"]
    data.acknowledged = {k: (a, b, c) for k, (a, b, c) in header["acknowledged"].items()}
    widths = header["widths"]
    if not all(isinstance(w, list) and all(type(x) is int and x >= 0 for x in w) for w in widths.values()):
        raise ValueError("saved view: column widths are not counts")
    data.widths = widths
    offset = 8 + size
    with gc_paused():
        for name, meta in header["panes"].items():
            texts = []
            for length in meta["lengths"]:
                texts.append(blob[offset : offset + length].decode("utf-8"))
                offset += length
            which, _, pane = name.partition(":")
            (data.rows if which == "rows" else data.ignored_rows)[pane] = _decode_rows(meta, texts)
    if offset != len(blob):
        raise ValueError("saved view: trailing bytes")
    return data


def encode_plan(data: ConsoleData) -> bytes:
    """The saved plan of `data`: a JSON header line, then one JSON line per model (each model's
    JSON reused from the last encode when it is the same object)."""
    with _MODELS.lock, gc_paused():
        _MODELS.begin()
        try:
            return _encode_plan(data)
        finally:
            _MODELS.end()


def _encode_plan(data: ConsoleData) -> bytes:
    plan = data.plan
    groups: dict[str, list[Any]] = {
        "lines": plan.lines,
        "ignored_lines": plan.ignored_lines,
        "findings": plan.findings,
        "ignored": list(data.ignored.values()),
        "psa_lines": list(data.psa_lines.values()),
        "bindings": list(data.bindings.values()),
    }
    header = json.dumps(
        {
            "format": PLAN_FORMAT,
            "totals": plan.totals.model_dump(mode="json"),
            "counts": {k: len(v) for k, v in groups.items()},
            "product_names": data.product_names,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )
    out = [header.encode("utf-8")]
    for models in groups.values():
        out += [_MODELS(m) for m in models]
    return b"\n".join(out)


def restore_plan(view: ConsoleData, blob: bytes) -> ConsoleData:
    """`view` (decoded by `decode_view`) with its saved plan: a new, complete ConsoleData sharing
    the view's rows. Validated by the engine's models, a few hundred at a time."""
    from pydantic import TypeAdapter

    from engine.plan import Finding, Plan, PlanLine, Totals
    from engine.scenario import Ignore, ProductBinding, PsaLine

    head, *lines = blob.split(b"\n")
    header = json.loads(head)
    if header.get("format") != PLAN_FORMAT:
        raise ValueError(f"saved plan: unknown format {header.get('format')!r}")
    models = {
        "lines": PlanLine,
        "ignored_lines": PlanLine,
        "findings": Finding,
        "ignored": Ignore,
        "psa_lines": PsaLine,
        "bindings": ProductBinding,
    }
    parsed: dict[str, list[Any]] = {}
    at = 0
    with gc_paused():
        for name, model in models.items():
            n = header["counts"][name]
            adapter = TypeAdapter(list[model])  # type: ignore[valid-type]
            items: list[Any] = []
            for start in range(at, at + n, _CHUNK):
                chunk = lines[start : min(start + _CHUNK, at + n)]
                items += adapter.validate_json(b"[" + b",".join(chunk) + b"]")
            if len(items) != n:
                raise ValueError(f"saved plan: {name} truncated")
            parsed[name] = items
            at += n
    if at != len(lines):
        raise ValueError("saved plan: trailing lines")
    plan = Plan(
        as_of=view.as_of,
        invoiced_through=view.invoiced_through,
        lines=parsed["lines"],
        findings=parsed["findings"],
        totals=Totals.model_validate(header["totals"]),
    )
    plan.ignored_lines = parsed["ignored_lines"]
    data = replace(view, plan=plan, complete=True)
    data.lines = {line.key: line for line in (*plan.lines, *plan.ignored_lines)}
    data.ignored = {i.key: i for i in parsed["ignored"]}
    data.psa_lines = {line.id: line for line in parsed["psa_lines"]}
    data.bindings = {(b.vendor_product_id, b.sub_product or ""): b for b in parsed["bindings"]}
    data.product_names = header["product_names"]
    return data
