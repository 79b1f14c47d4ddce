"""The command palette, generated from the same registry as the keys and the help screen."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from tui.bindings import REGISTRY, Command, effective_keys, key_label


class RegistryCommands(Provider):
    def _commands(self) -> list[Command]:
        """Everywhere, plus the commands of the screen the palette was opened on."""
        scope = getattr(self.screen, "SCOPE", "main")
        return [c for c in REGISTRY if c.scope in ("app", scope) and c.scope != "review"]

    async def _run(self, command: Command) -> None:
        app = self.app
        target = "app" if command.scope == "app" else "screen"
        await app.run_action(f"{target}.{command.action}")

    def _label(self, command: Command) -> str:
        keymap = getattr(self.app, "keymap", {})
        return f"{command.description}  ({key_label(effective_keys(command, keymap))})"

    async def discover(self) -> Hits:
        for command in self._commands():
            yield DiscoveryHit(self._label(command), partial(self._run, command), help=command.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command in self._commands():
            label = self._label(command)
            score = matcher.match(label)
            if score > 0:
                yield Hit(score, matcher.highlight(label), partial(self._run, command), help=command.help)
