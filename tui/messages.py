"""Past-tense messages: facts the screens react to."""

from __future__ import annotations

from textual.message import Message

from tui.model import ConsoleData


class DataLoaded(Message):
    """A fresh reconciliation is ready."""

    def __init__(self, data: ConsoleData) -> None:
        super().__init__()
        self.data = data


class ActionFailed(Message):
    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message


class ActionSucceeded(Message):
    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message
