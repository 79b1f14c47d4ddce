"""engine.scrub.clean_text / clean_json: what a terminal would act on never survives."""

from __future__ import annotations

import pytest

from engine.scrub import clean_json, clean_text


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("Esc \x1b]0;PWNED\x07 \x1b[2J", "Esc  "),  # window title (OSC 0) and clear screen (CSI 2J)
        ("copy\x1b]52;c;cHduZWQ=\x1b\\me", "copyme"),  # OSC 52 clipboard write, ST-terminated
        ("red\x1b[31mtext\x1b[0m", "redtext"),
        ("c1\x9b2Jcsi\x9d0;t\x9c", "c1csi"),  # 8-bit CSI and OSC
        ("dcs\x1bPq#0;2;0;0;0\x1b\\end", "dcsend"),  # DCS (sixel)
        ("bell\x07nul\x00del\x7f", "bellnuldel"),
        ("bidi\u202eevil\u2066x\u2069", "bidievilx"),
        ("lone\ud800surrogate", "lone\ufffdsurrogate"),
        ("tab\tnew\nline", "tab new line"),
        ("Café — 株式会社 ✓", "Café — 株式会社 ✓"),  # printable text is untouched
        ("Acme\u00a0Inc", "Acme\u00a0Inc"),  # a no-break space is kept
    ],
)
def test_clean_text(raw: str, shown: str) -> None:
    assert clean_text(raw) == shown


def test_clean_text_keeps_newlines_in_multi_line_text() -> None:
    assert clean_text("line 1\nline 2\t\x1b[Kend", newlines=True) == "line 1\nline 2\tend"


def test_clean_json_cleans_every_string_and_key_without_recursion() -> None:
    body = {"na\x00me": ["\x1b]0;x\x07ok", {"d": "a\x9b0mb"}], "n": 1}
    assert clean_json(body) == {"name": ["ok", {"d": "ab"}], "n": 1}
    deep: list = ["\x1b[2Jx"]
    for _ in range(100_000):
        deep = [deep]
    clean_json(deep)  # no RecursionError
    node = deep
    while isinstance(node[0], list):
        node = node[0]
    assert node == ["x"]
