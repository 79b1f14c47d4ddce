"""The key footer: Textual's `Footer`, rebuilt only when the keys it shows changed.

Textual's Footer recomposes on every `refresh_bindings` (a focus change, a modal closing, each new
set of figures): a recompose is a layout pass of the whole screen, and closing the ignore dialog
asked for three of them (≈ 40 ms at 50,000 subscriptions, on the UI loop while the action's worker
waited for it). What the footer shows is the keys whose binding has `show` — their key, label,
tooltip and whether they are enabled — so it is rebuilt when that list changes, not otherwise, and
not while a dialog is over its screen (closing one, the keys flickered off and on: two rebuilds)."""

from __future__ import annotations

from textual.screen import Screen
from textual.widgets import Footer

Shown = tuple[tuple[str, str, str, str, bool, str], ...]


def shown_keys(screen: Screen[object]) -> Shown:
    """What a footer on `screen` shows, in order: (key, display, action, label, enabled, tooltip)."""
    app = screen.app
    palette = app.COMMAND_PALETTE_BINDING if app.ENABLE_COMMAND_PALETTE else None
    return tuple(
        (
            binding.key,
            app.get_key_display(binding),
            binding.action,
            binding.description,
            enabled,
            tooltip or "",
        )
        for key, (_, binding, enabled, tooltip) in screen.active_bindings.items()
        if binding.show or key == palette
    )


class KeysFooter(Footer):
    def __init__(self) -> None:
        super().__init__()
        self._shown: Shown | None = None  # what the last recompose showed

    def bindings_changed(self, screen: Screen[object]) -> None:
        if not (screen.app.app_focus and self.is_attached and screen is self.screen):
            super().bindings_changed(screen)  # nothing is rebuilt; ready for when it is
            return
        if screen is not screen.app.screen:
            return  # a dialog on top, or closing: keys read now are the dialog's (f5 off), and the
            # screen asks again when it is resumed
        shown = shown_keys(screen)
        if shown == self._shown:
            return  # the same keys, labels and states: nothing to rebuild
        self._shown = shown
        super().bindings_changed(screen)
