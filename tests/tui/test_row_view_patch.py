"""A pane's keyed patch (`RowView.patch_rows`, what an action's per-customer recompute calls) must
leave the pane exactly as setting all its rows again would: the same rows in the same order, every
key found (and at its place), no key of a row that left, the filter and the customer search over
the new rows. Patched or set again, the operator sees the same table."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tui.rows import Row
from tui.view import RowView
from tui.widgets.keyed_table import SubsetRows


def _row(key: str, text: str = "") -> Row:
    return Row(key=key, cells=(key, text or f"{key} cell"))


def _edit(old: list[Row], start: int, drop: int, add: list[str], scattered: list[int]) -> list[Row]:
    """`old` with a run of rows replaced by new ones (what a per-customer recompute does), and
    some rows elsewhere replaced by equal-keyed new objects (a change not in one run)."""
    start = min(start, len(old))
    new = old[:start] + [_row(k, "new") for k in add] + old[start + drop :]
    for i in scattered:
        if new:
            i %= len(new)
            new[i] = _row(new[i].key, "changed")
    return new


keys = st.lists(st.sampled_from([f"k{i:03d}" for i in range(300)]), unique=True, max_size=120)


@settings(max_examples=300, deadline=None)
@given(
    old_keys=keys,
    start=st.integers(0, 130),
    drop=st.integers(0, 20),
    add=st.lists(st.sampled_from([f"k{i:03d}" for i in range(280, 320)]), max_size=12),
    scattered=st.lists(st.integers(0, 500), max_size=3),
    indexed=st.booleans(),
    filtered=st.sampled_from(["", "k0", "new", "k1"]),
)
@example(old_keys=["k000", "k001"], start=1, drop=1, add=[], scattered=[], indexed=True, filtered="")
@example(
    old_keys=["k000", "k001", "k002"], start=1, drop=1, add=["k300"], scattered=[], indexed=True, filtered=""
)
@example(
    old_keys=["k000"], start=1, drop=0, add=["k000"], scattered=[], indexed=True, filtered=""
)  # a key twice
def test_a_patch_shows_what_setting_every_row_again_shows(
    old_keys: list[str],
    start: int,
    drop: int,
    add: list[str],
    scattered: list[int],
    indexed: bool,
    filtered: str,
) -> None:
    old = [_row(k) for k in old_keys]
    new = _edit(old, start, drop, add, scattered)
    patched = RowView()
    patched.set_rows(old)
    patched.widths()
    if indexed:
        patched.index  # noqa: B018 - the positions built before the patch (a lookup happened)
    patched.set_filter(filtered)
    patched.matches  # noqa: B018 - the old matches kept: the patch must drop them
    changed = [r for r in new if not any(r is o for o in old)]
    patched.patch_rows(new, changed)

    fresh = RowView()
    fresh.set_rows(new)
    fresh.set_filter(filtered)
    assert patched.rows == fresh.rows
    assert patched.by_key == fresh.by_key
    assert patched.index == fresh.index
    assert [r.key for r in patched.matches] == [r.key for r in fresh.matches]
    for key in {*old_keys, *add}:
        assert (key in patched) == (key in fresh.by_key)
    # the widths may stay wider than the widest cell, never narrower
    assert all(p >= f for p, f in zip(patched.widths(), fresh.widths(), strict=False))
    if len(fresh.by_key) < len(new):
        return  # a key twice in a pane (never built so): no lookup through the matches is defined
    # the table's lookup of a key through the filter's matches
    matches = patched.matches
    rows = SubsetRows(
        matches,
        lambda: patched.index,
        lambda r: r.key,
        lambda i: (matches[i].key, matches[i].cells, ""),
        patched.widths,
        patched,
    )
    for key in {*old_keys, *add}:
        where = rows.index(key)
        expected = next((i for i, r in enumerate(fresh.matches) if r.key == key), None)
        assert where == expected, key


def test_a_patch_of_one_row_in_45000_does_not_index_the_pane_again() -> None:
    """An ignore on a 45,000-row Unsynced pane: the row leaves, nothing else is read again (the
    positions are rebuilt only when a lookup asks for them)."""
    old = [_row(f"s{i:06d}") for i in range(45_000)]
    view = RowView()
    view.set_rows(old)
    view.index  # noqa: B018
    new = old[:20_000] + old[20_001:]
    view.patch_rows(new, [])
    assert view._index is None  # a row left: the positions after it moved, built when asked
    assert "s020000" not in view and view.index["s020001"] == 20_000
    edited = [*new[:100], _row(new[100].key, "edited"), *new[101:]]
    view.patch_rows(edited, [edited[100]])
    assert view._index is not None and view.index[new[101].key] == 101  # same length: patched in place
    assert view.by_key[new[100].key].cells[1] == "edited"
