"""The real `trueup` on the sandbox inside tmux: keys in, `capture-pane` out, what a user sees."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.tmux,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]

ROOT = Path(__file__).resolve().parents[2]


class Tmux:
    def __init__(self, socket: str) -> None:
        self.socket = socket

    def run(self, *args: str) -> str:
        return subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=False, timeout=30
        ).stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "console")

    def keys(self, *keys: str) -> None:
        for key in keys:
            self.run("send-keys", "-t", "console", key)
            time.sleep(0.15)

    def type(self, text: str) -> None:
        self.run("send-keys", "-t", "console", "-l", text)
        time.sleep(0.3)

    def wait(self, predicate: Callable[[str], object], timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if predicate(screen):
                return screen
            time.sleep(0.25)
        raise AssertionError(f"timed out; the screen shows:\n{screen}")

    def wait_for(self, text: str, timeout: float = 60) -> str:
        return self.wait(lambda s: text in s, timeout)


SIZE = ("120", "40")


@pytest.fixture
def tmux(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Tmux]:
    width, height = getattr(request, "param", SIZE)
    socket = f"trueup-test-{os.getpid()}-{width}"
    t = Tmux(socket)
    env = {**os.environ, "TRUEUP_DATABASE_URL": f"sqlite:///{tmp_path / 'sandbox.db'}"}
    for name in ("NO_COLOR", "COLUMNS", "LINES", "TEXTUAL", "TEXTUAL_DRIVER"):
        env.pop(name, None)
    uv = shutil.which("uv")
    command = f"cd {ROOT} && {uv} run trueup" if uv else f"cd {ROOT} && trueup"
    subprocess.run(
        [
            "tmux",
            "-L",
            socket,
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "console",
            "-x",
            width,
            "-y",
            height,
            command,
        ],
        env=env,
        check=True,
        timeout=30,
    )
    try:
        yield t
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, check=False, timeout=30)


def prorate_count(screen: str) -> int:
    match = re.search(r"Prorates — (\d+)", screen)
    assert match, screen
    return int(match.group(1))


def test_operator_session(tmux: Tmux) -> None:
    screen = tmux.wait(lambda s: "SANDBOX" in s and "Overview — 8" in s, timeout=120)
    assert "invoiced through" in screen
    tmux.keys("5")
    screen = tmux.wait_for("Prorates — ")
    count = prorate_count(screen)
    assert "Effective Date" in screen
    # ignore the first prorate, with a reason
    tmux.keys("i")
    tmux.wait_for("Reason (who asked, why)")
    tmux.type("tmux test")
    tmux.keys("Enter")
    tmux.wait_for(f"Prorates — {count - 1}")
    # show ignored items, go to the last row (the ignored one), restore it
    tmux.keys("t")
    tmux.wait(lambda s: "Showing ignored" in s and prorate_count(s) >= count)
    tmux.keys("G")
    # the detail names who ignored it and why; wait for the notifications ("▌") to go from over it
    screen = tmux.wait(lambda s: "IGNORED by" in s and "\u258c" not in s, timeout=20)
    for _ in range(5):  # the demo has ignored lines of its own: find ours
        if "tmux test" in screen:
            break
        tmux.keys("Up")
        screen = tmux.screen()
    assert "tmux test" in screen
    tmux.keys("r")
    tmux.wait(lambda s: "Restored 1 item" in s)
    tmux.keys("t")
    tmux.wait(lambda s: "Ignored items hidden" in s and f"Prorates — {count}" in s)
    # an invalid effective date is refused with the engine's message
    tmux.keys("e")
    tmux.wait_for("Effective date of")
    tmux.keys("C-a", "C-k")
    tmux.type("2026-12-15")
    tmux.keys("Enter")
    screen = tmux.wait_for("is not the first of a month")
    tmux.keys("Escape")
    tmux.wait(lambda s: "Effective date of" not in s)
    # review two lines and confirm: the sandbox PSA receives them
    tmux.keys("space", "space", "v")
    screen = tmux.wait_for("Review — 2 selected lines")
    assert "Grand total" in screen
    tmux.keys("y")
    tmux.wait_for("Confirm sync")
    tmux.keys("y")
    screen = tmux.wait_for("Sync finished", timeout=60)
    assert "2 written" in screen
    tmux.keys("Escape")
    tmux.wait_for("Prorates — ")
    tmux.keys("q")


MONEY = re.compile(r"[+-]?\$[\d,]+\.\d\d")


def money_on(screen: str) -> list[str]:
    return MONEY.findall(screen)


@pytest.mark.parametrize("tmux", [("80", "24")], indirect=True)
def test_month_end_at_80x24(tmux: Tmux, tmp_path: Path) -> None:
    """A whole month-end at 80×24: the money is on screen at every step (issue 13)."""
    screen = tmux.wait(lambda s: "SANDBOX" in s and "Overview — 8" in s, timeout=120)
    assert "Net $/mo" in screen and money_on(screen), screen
    # map with a suggestion: the near match is pre-selected, enter maps it
    tmux.keys("2")
    tmux.wait_for("Customers — ")
    tmux.keys("/")
    tmux.type("Quarry Hill")
    tmux.keys("Enter")
    tmux.wait_for("(filter: Quarry Hill)")
    tmux.keys("m")
    tmux.wait_for("Suggested: Quarry Hill Foods, L.L.C.")
    tmux.keys("Enter")
    screen = tmux.wait_for("Mapped Quarry Hill Foods LLC")
    assert "Net $/mo" in screen
    tmux.keys("Escape")
    # bind the first unbound product (NOT BOUND rows come first) to the PSA product offered first
    tmux.keys("p")
    tmux.wait_for("NOT BOUND")
    tmux.keys("b")
    tmux.wait_for("products")  # the picker: the highlighted PSA product is taken on enter
    tmux.keys("Enter")
    tmux.wait_for("Bound Microsoft 365 Copilot to")
    tmux.keys("Escape")
    # ignore and restore a subscription: the net figure stays on screen
    tmux.keys("3")
    screen = tmux.wait(
        lambda s: (
            "Unsynced — " in s and "Old → new" in s and "Net $/mo" in s and "State" in s and money_on(s)
        ),
        timeout=20,
    )
    count = int(re.search(r"Unsynced — (\d+)", screen).group(1))  # type: ignore[union-attr]
    tmux.keys("i")
    tmux.wait_for("Reason (who asked, why)")
    tmux.type("tmux month-end")
    tmux.keys("Enter")
    tmux.wait_for(f"Unsynced — {count - 1}")
    tmux.keys("t")
    tmux.wait_for("Showing ignored")
    tmux.keys("G")
    # the detail names who ignored it and why; wait for the notifications ("▌") to go from over it
    screen = tmux.wait(lambda s: "IGNORED by" in s and "\u258c" not in s, timeout=20)
    for _ in range(5):
        if "tmux month-end" in screen:
            break
        tmux.keys("Up")
        screen = tmux.screen()
    tmux.keys("r")
    tmux.wait_for("Restored")
    tmux.keys("t")
    tmux.wait(lambda s: "Ignored items hidden" in s and f"Unsynced — {count}" in s and money_on(s))
    # edit a date: a mid-month date is refused with the reason
    tmux.keys("5")
    # (notifications cover half an 80×24 screen for a few seconds: wait for them to go)
    tmux.wait(lambda s: "Prorates — " in s and "One-time" in s and bool(money_on(s)), timeout=20)
    tmux.keys("e")
    tmux.wait_for("Effective date of")
    tmux.keys("C-a", "C-k")
    tmux.type("2026-12-15")
    tmux.keys("Enter")
    tmux.wait_for("is not the first of a month")
    tmux.keys("Escape")
    tmux.wait(lambda s: "Effective date of" not in s)
    # review two prorates and confirm: the confirm states the net, the one-time and the PSA
    tmux.keys("space", "space", "v")
    tmux.wait(
        lambda s: "Review — 2 selected lines" in s and "Net $/mo" in s and "Grand total" in s and money_on(s),
        timeout=20,
    )
    tmux.keys("y")
    tmux.wait(
        lambda s: (
            "Confirm sync" in s
            and re.search(r"net [+-]?\$[\d,]+\.\d\d/month, one-time \$[\d,]+\.\d\d", s) is not None
        ),
        timeout=20,
    )
    tmux.keys("y")
    screen = tmux.wait_for("Sync finished", timeout=60)
    assert "2 written" in screen
    tmux.keys("Escape")
    tmux.wait_for("Prorates — ")
    tmux.keys("q")
    time.sleep(1)
    # the CLI reads the same store: the console's actions are in the audit trail
    uv = shutil.which("uv")
    command = [uv, "run", "trueup"] if uv else ["trueup"]
    out = subprocess.run(
        [*command, "--db", f"sqlite:///{tmp_path / 'sandbox.db'}", "audit"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "ignore" in out.stdout and "map_company" in out.stdout, out.stdout


@pytest.mark.parametrize("tmux", [("80", "24")], indirect=True)
def test_header_acknowledged_warning_and_notifications_fit_80x24(tmux: Tmux) -> None:
    """Issue 13's fitting items on the real console: the header keeps the store, the PSA, the as-of
    and the invoiced-through date; an acknowledged warning says so in its own Errors row; the
    notification that says it leaves the table's rows in view."""
    screen = tmux.wait(lambda s: "SANDBOX" in s and "Overview — 8" in s, timeout=120)
    header = screen.splitlines()[0]
    assert "sandbox.db" in header and "ConnectWise" in header, header
    assert re.search(r"as of \d{4}-\d{2}-\d{2}", header), header
    assert re.search(r"through \d{4}-\d{2}-\d{2}", header), header  # the date, not cut
    tmux.keys("6")
    tmux.wait_for("Errors — ")
    tmux.keys("G", "k")  # the last finding is a warning (errors come first)
    tmux.wait_for("Acknowledge ")
    tmux.type("seen in tmux")
    tmux.keys("Enter")
    screen = tmux.wait(lambda s: "ack'd by" in s and "Acknowledged " in s)
    row = next(line for line in screen.splitlines() if "ack'd by" in line)
    assert re.search(r"ack'd by \S+ \d{2}-\d{2}", row), row  # who and when, whole
    assert "warning" in row
    # the toast is one line: the rows above it are all readable
    rows = [
        line for line in screen.splitlines() if line.startswith("│") and ("open" in line or "ack'd" in line)
    ]
    assert len(rows) >= 12, screen
