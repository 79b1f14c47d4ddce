"""A searchable picker (PSA companies, PSA products), and generated near-match suggestions confirmed
one key each."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

PICKER_LIMIT = 200  # options listed at once; typing narrows the rest


class PickerModal(ModalScreen[str | None]):
    """Pick one of many (id, label) by typing: the list narrows on every keystroke, enter takes the
    highlighted one, ↓ moves into the list, esc cancels. Returns the chosen id."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="modal-cancel"),
        Binding("down", "focus_list", show=False, id="modal-down"),
    ]

    def __init__(
        self,
        title: str,
        choices: list[tuple[str, str]],
        *,
        placeholder: str = "Search",
        note: str = "",
        list_id: str = "choices",
        verb: str = "choose",
        selected: str | None = None,
    ) -> None:
        super().__init__()
        self._title, self._choices, self._placeholder = title, choices, placeholder
        self._note, self._list_id, self._verb = note, list_id, verb
        self._selected = selected  # pre-selected (a suggestion): enter takes it

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal"):
            yield Static(Text(self._title), classes="modal-title")
            if self._note:
                yield Static(Text(self._note), classes="modal-note")
            yield Input(placeholder=self._placeholder, id="search", value="")
            yield OptionList(*self._options(""), id=self._list_id, classes="picker")
            yield Static(
                Text(f"type to search   ↓ list   enter  {self._verb}   esc  cancel"), classes="modal-keys"
            )

    def _options(self, query: str) -> list[Option]:
        q = query.casefold().strip()
        found = [
            Option(Text(f"{label}  ({cid})"), id=cid)
            for cid, label in self._choices
            if not q or q in label.casefold() or q == cid.casefold()
        ]
        if len(found) > PICKER_LIMIT:
            more = len(found) - PICKER_LIMIT
            found = [*found[:PICKER_LIMIT], Option(Text(f"… {more:,} more: type to narrow"), disabled=True)]
        return found

    def on_mount(self) -> None:
        self.query_one("#search", Input).focus()
        if self._selected is not None:
            options = self.query_one(OptionList)
            for index in range(options.option_count):
                if options.get_option_at_index(index).id == self._selected:
                    options.highlighted = index
                    break

    def on_input_changed(self, event: Input.Changed) -> None:
        options = self.query_one(OptionList)
        options.clear_options()
        options.add_options(self._options(event.value))
        if options.option_count:
            options.highlighted = 0

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        options = self.query_one(OptionList)
        if options.option_count:
            option = options.get_option_at_index(options.highlighted or 0)
            if not option.disabled:
                self.dismiss(option.id)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option.id)

    def action_focus_list(self) -> None:
        self.query_one(OptionList).focus()

    def action_cancel(self) -> None:
        self.dismiss(None)


class MapCompanyModal(PickerModal):
    """Returns the chosen PSA company id."""

    def __init__(
        self, vendor_name: str, companies: list[tuple[str, str]], suggested: str | None = None
    ) -> None:
        label = dict(companies).get(suggested or "")
        super().__init__(
            f"Map {vendor_name} to a PSA company",
            companies,
            placeholder="Search PSA companies",
            list_id="companies",
            verb="map",
            note=f"Suggested: {label} (highlighted: enter maps it)" if label else "",
            selected=suggested if label else None,
        )


def suggest_company(vendor_name: str, companies: list[tuple[str, str]], taken: set[str]) -> str | None:
    """The PSA company a vendor company's name nearly matches (engine.actions' near-match form:
    suffixes, punctuation and accents ignored, else a close spelling), among those not mapped yet."""
    from difflib import SequenceMatcher

    from engine.actions import loose_name

    want = loose_name(vendor_name)
    free = [(cid, name) for cid, name in companies if cid not in taken]
    for cid, name in free:
        if loose_name(name) == want:
            return cid
    best: tuple[float, str] | None = None
    for cid, name in free:
        score = SequenceMatcher(None, want, loose_name(name)).ratio()
        if score >= 0.8 and (best is None or score > best[0]):
            best = (score, cid)
    return best[1] if best else None


class SuggestionsModal(ModalScreen[list[tuple[str, str]]]):
    """Near matches from `generate_mappings`: `y` (or enter) accepts the highlighted one; esc closes
    and returns every accepted (vendor id, PSA id)."""

    BINDINGS = [
        Binding("y,enter", "accept", "Accept", id="modal-accept"),
        Binding("escape", "done", "Done", id="modal-done"),
    ]

    def __init__(self, applied: int, suggestions: list[tuple[str, str, str, str, float]]) -> None:
        super().__init__()
        self._applied = applied
        self._suggestions = suggestions
        self._accepted: list[tuple[str, str]] = []

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal"):
            yield Static(
                Text(f"Mapped {self._applied} exact name matches. Near matches:"), classes="modal-title"
            )
            yield OptionList(
                *[
                    Option(Text(f"{vn}  →  {pn}  ({score:.0%})"), id=f"{i}")
                    for i, (_, vn, _, pn, score) in enumerate(self._suggestions)
                ],
                id="suggestions",
            )
            yield Static(Text("y / enter  map this one     esc  done"), classes="modal-keys")

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.action_accept()

    def action_accept(self) -> None:
        options = self.query_one(OptionList)
        if options.highlighted is None or not options.option_count:
            return
        option = options.get_option_at_index(options.highlighted)
        vendor_id, vendor_name, psa_id, psa_name, _ = self._suggestions[int(option.id or 0)]
        if (vendor_id, psa_id) not in self._accepted and not option.disabled:
            self._accepted.append((vendor_id, psa_id))
            options.replace_option_prompt_at_index(
                options.highlighted, Text(f"MAPPED  {vendor_name}  →  {psa_name}")
            )
            options.disable_option_at_index(options.highlighted)

    def action_done(self) -> None:
        self.dismiss(self._accepted)
