"""Past-tense messages: facts the screens react to."""

from __future__ import annotations

from textual.message import Message

from tui.rows import ConsoleData


class DataLoaded(Message):
    """New figures are ready. `companies`: only these customers were recomputed (their rows are
    patched), None: everything was."""

    def __init__(
        self, data: ConsoleData, companies: frozenset[str] | None = None, *, save_after: bool = False
    ) -> None:
        super().__init__()
        self.data = data
        self.companies = companies
        self.save_after = save_after  # to be saved once shown (the sender does not save them)


class ActionFailed(Message):
    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message


class ActionSucceeded(Message):
    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message
