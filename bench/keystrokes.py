"""Keystrokes on the Unsynced table, timed from the key to the frame that shows it.

Each key is sent with Textual's Pilot, as before; what is timed is new. Pilot's `press` waits for
the app to go idle (20 ms sleeps until the process stops using CPU) twice and `pause()` once more,
so its wall time has a floor of ≈ 60–90 ms that no operator ever waits for. Here the run hooks
the app's output instead:

* the key's time is taken just before Pilot hands the key event to the driver
  (`driver.send_message`, wrapped for the run);
* every frame the app writes goes through `App._display` (wrapped for the run). The headless
  driver writes nothing, so the wrapper also does the work a terminal driver would — turns the
  compositor's update into the terminal's escape sequences — and time-stamps the frame then;
* the key's frame is the first one after the key whose state *and* text show the key: the cursor
  on the expected row and that row's id in the frame's text (down, page down), or the filter
  applied to the table and its title "(filter: …)" in the frame's text (filter keystrokes). A
  frame of something else (a timer, the input's cursor) does not count; a debounced filter counts
  only once the table shows it.

Reported per kind: key → frame (`median_ms`, `p95_ms`, the headline), the process's CPU time per
keystroke (`cpu_median_ms`, `cpu_p95_ms`: the app is single-threaded, so that is its own work plus
Pilot's), and Pilot's wall time with its idle waits (`wall_median_ms`, `wall_p95_ms`: the figure
reported before this module, kept comparable). `unreflected` counts keys whose frame never came
(their wall time stands in for the key → frame time).

No Textual import at module level: `bench.console` imports this after its start-up clock."""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Callable
from typing import Any

ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
FRAME_WAIT = 2.0  # seconds a key's frame may still take after Pilot's waits


def summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times) or [0.0]
    p95 = ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))]
    return {
        "n": len(times),
        "median_ms": statistics.median(ordered) * 1000,
        "p95_ms": p95 * 1000,
        "max_ms": ordered[-1] * 1000,
    }


class FrameClock:
    """Time-stamps the key and the first frame after it that `expect` accepts."""

    def __init__(self, app: Any) -> None:
        from textual import events

        self.app = app
        self._key_type = events.Key
        self._display = app._display
        self._send = app._driver.send_message
        self.sent: float | None = None
        self.frame_at: float | None = None
        self.expect: Callable[[str], bool] | None = None
        self.frames = 0

    def __enter__(self) -> FrameClock:
        self.app._display = self._on_display
        self.app._driver.send_message = self._on_send
        return self

    def __exit__(self, *exc: object) -> None:
        self.app._display = self._display
        self.app._driver.send_message = self._send

    def arm(self, expect: Callable[[str], bool]) -> None:
        self.sent = self.frame_at = None
        self.expect = expect

    def _on_send(self, message: Any) -> None:
        if isinstance(message, self._key_type) and self.sent is None:
            self.sent = time.perf_counter()
        self._send(message)

    def _on_display(self, screen: Any, renderable: Any) -> None:
        self._display(screen, renderable)
        if renderable is None or self.app._batch_count:
            return  # nothing is written for these
        terminal = renderable.render_segments(self.app.console)  # what a terminal driver would write
        now = time.perf_counter()
        self.frames += 1
        if self.sent is not None and self.frame_at is None and self.expect is not None:
            if self.expect(ANSI.sub("", terminal)):
                self.frame_at = now

    @property
    def latency(self) -> float | None:
        if self.sent is None or self.frame_at is None:
            return None
        return self.frame_at - self.sent


async def measure(app: Any, pilot: Any, keys: int, kind_seconds: float) -> dict[str, Any]:
    """`down`, `pagedown` and filter keystrokes (a 6-letter company prefix typed, then erased with
    backspace, repeatedly) on the Unsynced pane, which must be on screen with its rows."""
    from tui.view import count

    pane = app.main.pane("unsynced")
    table = pane.table
    rows = pane.rows
    out: dict[str, Any] = {}
    cpu: dict[str, list[float]] = {}
    wall: dict[str, list[float]] = {}
    frame: dict[str, list[float]] = {}
    unreflected: dict[str, int] = {}

    async def timed(clock: FrameClock, key: str, kind: str, expect: Callable[[str], bool]) -> None:
        clock.arm(expect)
        c0, t0 = time.process_time(), time.perf_counter()
        await pilot.press(key)
        await pilot.pause()
        cpu.setdefault(kind, []).append(time.process_time() - c0)
        spent = time.perf_counter() - t0
        wall.setdefault(kind, []).append(spent)
        until = time.perf_counter() + FRAME_WAIT
        while clock.latency is None and time.perf_counter() < until:
            await pilot.pause(0.01)
        if clock.latency is None:
            unreflected[kind] = unreflected.get(kind, 0) + 1
        frame.setdefault(kind, []).append(clock.latency if clock.latency is not None else spent)

    def cursor_on(row: int) -> Callable[[str], bool]:
        ident = table.rows.row(row)[1][1] if row < table.row_count else ""  # the Id column (after Sel)
        return lambda text: table.cursor_row == row and ident in text

    table.focus()
    await pilot.pause()
    with FrameClock(app) as clock:
        for key, kind in (("down", "cursor"), ("pagedown", "pagedown")):
            until = time.perf_counter() + kind_seconds
            while len(wall.get(kind, [])) < keys and time.perf_counter() < until:
                step = 1 if key == "down" else table.page_height
                target = min(table.cursor_row + step, table.row_count - 1)
                if target == table.cursor_row:
                    await pilot.press("home")
                    continue
                await timed(clock, key, kind, cursor_on(target))

        word = (rows[len(rows) // 2].cells[1] if rows else "contoso")[:6].lower()
        await pilot.press("slash")
        await pilot.pause()

        def shows(typed: str) -> Callable[[str], bool]:
            title = f"(filter: {typed.strip()})" if typed.strip() else f"Unsynced — {count(len(rows))}"
            return lambda text: pane.filter_text == typed and title in text

        until = time.perf_counter() + kind_seconds
        while len(wall.get("filter", [])) < keys and time.perf_counter() < until:
            for i, ch in enumerate(word):
                await timed(clock, ch if ch != " " else "space", "filter", shows(word[: i + 1]))
            for i in range(len(word)):
                await timed(clock, "backspace", "filter", shows(word[: len(word) - i - 1]))
        out["frames_written"] = clock.frames

    for kind in ("cursor", "pagedown", "filter"):
        out[kind] = {
            **summary(frame.get(kind, [])),
            "cpu_median_ms": summary(cpu.get(kind, []))["median_ms"],
            "cpu_p95_ms": summary(cpu.get(kind, []))["p95_ms"],
            "wall_median_ms": summary(wall.get(kind, []))["median_ms"],
            "wall_p95_ms": summary(wall.get(kind, []))["p95_ms"],
            "unreflected": unreflected.get(kind, 0),
        }
    out["filter_word"] = word
    await pilot.press("escape")
    await pilot.pause()

    # An unbound key: Pilot's own wall time for a press (no frame to wait for).
    floor: list[float] = []
    until = time.perf_counter() + kind_seconds
    while len(floor) < keys and time.perf_counter() < until:
        t0 = time.perf_counter()
        await pilot.press("f24")
        await pilot.pause()
        floor.append(time.perf_counter() - t0)
    out["floor"] = summary(floor)
    return out
