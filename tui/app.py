"""TrueupApp: the console. It takes a workspace (store + PSA + refresh) and a clock, so tests build
it from a fixed scenario and date; `run_console` is what `trueup` with no subcommand runs.

The launch paints before the engine is imported (issue 12 item 4): this module, and what the
first frame needs (the main screen, its panes, `tui.rows`, `tui.launch`), import Textual and the
standard library only. The engine — the core, the workspace, SQLAlchemy, pydantic — is imported in
a thread worker after the first frame (`_start_engine`); until then navigation works on the rows
shown and an action says, in one line, that the engine is loading."""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from textual import work
from textual.app import App
from textual.screen import ModalScreen
from textual.worker import Worker, WorkerState

from engine.batch import freeze_long_lived
from engine.store.saved_state import SAVED_STATE
from tui.bindings import NEEDS_ENGINE, REGISTRY, bindings
from tui.commands import RegistryCommands
from tui.messages import ActionFailed, ActionSucceeded, DataLoaded
from tui.rows import ConsoleData, figures_time
from tui.screens.main import MainScreen

if TYPE_CHECKING:
    from textual.actions import ActionParseResult
    from textual.dom import DOMNode

    from engine.console_core import Act, Change, ConsoleCore, Outcome, Workspace

DEFAULT_REFRESH_INTERVAL = 300.0
SAVE_DELAY = 1.5  # seconds after the last change before the changed figures are saved
__all__ = ["SAVED_STATE", "TrueupApp", "run_console"]
log = logging.getLogger(__name__)
NO_COLOR_THEME = "ansi-dark"  # built in since Textual 8.2.5: the terminal's own colours, no palette of ours
LOADING_ENGINE = "Loading the engine… (a moment); {what} then."


class TrueupApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "trueup"
    BINDINGS = bindings("app")
    COMMANDS = App.COMMANDS | {RegistryCommands}

    def __init__(
        self,
        workspace: Workspace | None,
        *,
        clock: Callable[[], datetime] | None = None,
        as_of: date | None = None,
        refresh_interval: float | None = DEFAULT_REFRESH_INTERVAL,
        theme: str | None = None,
        keymap: dict[str, str] | None = None,
        executor_factory: Callable[[Any], Any] | None = None,
        full_refresh_on_start: bool = False,
        loader: Callable[[date | None, date], ConsoleData] | None = None,
        save_delay: float = SAVE_DELAY,
        open_workspace: Callable[[], Workspace] | None = None,
        first_view: ConsoleData | None = None,
        label: str = "",
        sandbox: bool = False,
    ) -> None:
        """`workspace` None: `open_workspace` opens it after the first paint, in a thread, and
        until then the header shows `label` and `sandbox` and the screen `first_view` (a saved
        view read before the engine, tui.launch)."""
        # NO_COLOR (no-color.org): ANSI colours only, and Textual strips even those (its NoColor filter),
        # so what remains is text and text styles; states are words (TODO, pending, ignored, NOT BOUND).
        no_color = bool(os.environ.get("NO_COLOR"))
        super().__init__(ansi_color=True if no_color else None)
        if no_color:
            self.theme = NO_COLOR_THEME
        self.workspace: Workspace | None = workspace
        self.clock = clock or datetime.now
        self.as_of = as_of
        self.refresh_interval = refresh_interval
        self.keymap = dict(keymap or {})
        self.executor_factory = executor_factory
        self.full_refresh_on_start = full_refresh_on_start
        self.data: ConsoleData | None = None  # the figures on screen (the core holds the current ones)
        self.show_ignored = False
        self.busy = ""
        self.animation_level = "none"
        self._refresh_timer: Any = None
        self._save_timer: Any = None
        self.save_delay = save_delay  # after a change, the save waits for the operator to pause
        self._initial_theme = theme
        self.refresh_count = 0
        self.loader = loader  # (as_of, today) -> ConsoleData; default: reconcile the workspace's store
        self.open_workspace = open_workspace
        self.startup_error: Exception | None = None
        self.first_view = first_view
        self.launch_label, self.launch_sandbox = label, sandbox  # the header's, until the workspace is open
        self._core: ConsoleCore[ConsoleData] | None = None
        self.engine_loaded_at: float | None = None  # time.perf_counter() when the core was built (bench)
        if workspace is not None:  # handed in (tests, tools): the engine is loaded already
            self._make_core(workspace)

    def _make_core(self, workspace: Workspace) -> ConsoleCore[ConsoleData]:
        from engine.console_core import ConsoleCore
        from tui.model import VIEW
        from tui.screens.fixes import check_fixes

        check_fixes()
        self.workspace = workspace
        core: ConsoleCore[ConsoleData] = ConsoleCore(
            workspace, VIEW, as_of=lambda: self.as_of, today=lambda: self.clock().date(), loader=self.loader
        )
        core.subscribe(self._post_change)
        self._core = core
        return core

    @property
    def engine_ready(self) -> bool:
        return self._core is not None

    @property
    def loaded_workspace(self) -> Workspace:
        """The open workspace (raises until the engine is loaded, as `core` does: the screens that
        read it open only after it is)."""
        if self.workspace is None:
            raise RuntimeError("the engine is still loading")
        return self.workspace

    @property
    def core(self) -> ConsoleCore[ConsoleData]:
        """The console's core (raises until the engine is loaded: callers run after it is)."""
        if self._core is None:
            raise RuntimeError("the engine is still loading")
        return self._core

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: Any = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Textual's notify, with the title folded into the message ("Refused: …"): a toast is one
        or two lines at most (app.tcss), so both are the message's."""
        if title:
            message = f"{title}: {message}"
        super().notify(message, severity=severity, timeout=timeout, markup=markup)

    # --- start ---------------------------------------------------------------------------------

    def on_mount(self) -> None:
        if self._initial_theme:
            if self._initial_theme in self.available_themes:
                self.theme = self._initial_theme
            else:
                self.notify(f"Unknown theme {self._initial_theme!r}; using {self.theme}.", severity="warning")
        if self.keymap:
            known = {c.id for c in REGISTRY}
            unknown = sorted(set(self.keymap) - known)
            if unknown:
                self.notify(f"Unknown binding ids in keymap: {', '.join(unknown)}", severity="warning")
            self.set_keymap({k: v for k, v in self.keymap.items() if k in known})
        self.push_screen(MainScreen())
        self.busy = "loading…"
        if self.first_view is not None:  # painted first; the engine is imported after that frame
            self.post_message(DataLoaded(self.first_view))
        elif self._core is None:
            self._start_engine(full=self.full_refresh_on_start)
        else:
            self.refresh_data(full=self.full_refresh_on_start, restore=True)

    @property
    def main(self) -> MainScreen | None:
        for screen in self.screen_stack:
            if isinstance(screen, MainScreen):
                return screen
        return None

    # --- data: the core owns the figures; the app shows them --------------------------------------

    @property
    def recomputing(self) -> bool:
        """A recompute is under way: the figures shown are about to change."""
        return self._core is not None and self._core.recomputing

    @property
    def saves(self) -> int:
        """Saved states written (tests)."""
        return self._core.saves if self._core is not None else 0

    @work(thread=True, exclusive=True, group="refresh", exit_on_error=False)
    def _start_engine(self, full: bool) -> None:
        """After the first paint: import the engine, open the workspace, check the view painted
        before it (the store's revision: a stale one is marked stale), then go on as a launch
        with the engine does (restore the plan, refresh)."""
        import time

        try:
            assert self.open_workspace is not None, "no workspace and nothing to open one with"
            workspace = self.open_workspace()
            core = self._make_core(workspace)
        except Exception as exc:  # the operator gets the sentence `run_console` prints, not a traceback
            self._from_thread(self._engine_failed, exc)
            return
        self.engine_loaded_at = time.perf_counter()
        self._from_thread(self._header, "")
        shown = self.data
        if shown is not None and shown is self.first_view:  # the search texts the view does not hold,
            from tui.rows import search_text  # built here, off the UI loop, before a first `/` needs them

            for rows in (*shown.rows.values(), *shown.ignored_rows.values()):
                for row in rows:
                    search_text(row)
        if shown is not None and shown is self.first_view and not core.verify(shown):
            self._from_thread(self._mark_stale, shown)
        self._refresh(full=full, fetch=True, restore=shown is None)

    def _engine_failed(self, exc: Exception) -> None:
        self.startup_error = exc
        self.exit(return_code=1)

    def _post_change(self, change: Change[ConsoleData]) -> None:
        """The core's change feed (any thread): new figures become a message."""
        self.post_message(DataLoaded(change.data, change.companies, save_after=True))

    def _from_thread(self, callback: Callable[..., object], *args: object, **kwargs: object) -> None:
        """Run `callback` on the UI loop from a worker thread (nothing when the app is gone)."""
        try:
            self.call_from_thread(callback, *args, **kwargs)
        except Exception:  # the app is closing: nothing left to show it on
            log.debug("UI callback after close", exc_info=True)

    def _header(self, busy: str) -> None:
        if self.main is not None:
            self.main.update_header(busy)

    def _mark_stale(self, shown: ConsoleData) -> None:
        """The refresh wrote to the store (or another operator did): until the recompute lands, the
        figures shown are marked stale (banner; review, sync and edits wait)."""
        if self.data is shown and not shown.stale:
            shown.stale = True
            if self.main is not None:
                self.main.show_state()

    @work(thread=True, exclusive=True, group="refresh", exit_on_error=False)
    def refresh_data(self, full: bool = False, fetch: bool = True, restore: bool = False) -> None:
        """The sweep (when `fetch`), then the figures for the store as it is (thread worker)."""
        self._refresh(full=full, fetch=fetch, restore=restore)

    def _refresh(self, full: bool = False, fetch: bool = True, restore: bool = False) -> None:
        core = self.core
        if restore:  # launch: paint the last saved state at once (current, or stale with a banner)
            saved = core.saved_view()
            if saved is not None:
                self.post_message(DataLoaded(saved))
        self._from_thread(self._header, "refreshing…")
        if fetch:

            def waiting(progress: Any) -> None:  # another process holds the store's refresh lock
                if getattr(progress, "stage", None) == "waiting":
                    self._from_thread(self.notify, str(progress.message), severity="warning", timeout=10)

            try:
                result = core.refresh(full=full, progress=waiting)
            except Exception as exc:
                result = None
                self._from_thread(self.notify, f"Refresh failed: {exc}", severity="error", timeout=10)
            for error in (result.errors if result is not None else None) or []:
                self._from_thread(self.notify, str(error), severity="error", timeout=10)
            for warning in getattr(result, "warnings", None) or []:
                self._from_thread(self.notify, str(warning), severity="warning", timeout=10)
            shown = self.data
            if shown is not None and core.outdated(shown):
                self._from_thread(self._mark_stale, shown)
        data = core.load(self.data)
        self.refresh_count += 1
        self.post_message(DataLoaded(data))
        core.save(data)
        core.prepare()

    @work(thread=True, group="refresh-customer", exit_on_error=False)
    def refresh_customer(self, company_id: str, name: str) -> None:
        """The targeted refresh of one customer (behind a running sweep), then its rows alone."""
        if any(w.group == "refresh" and w.is_running for w in self.workers):
            self._from_thread(self._header, f"{name}: waiting for the refresh under way…")
        try:
            result = self.core.refresh_customer(company_id)
        except Exception as exc:  # UnknownCompany and the like: the message is for the operator
            self.post_message(ActionFailed(f"Refresh of {name} failed: {exc}"))
            return
        finally:
            self._from_thread(self._header, "")
        errors = [str(e) for e in (result.errors if result is not None else None) or []]
        for error in errors:
            self._from_thread(self.notify, error, severity="error", timeout=10)
        if not errors:
            self.post_message(ActionSucceeded(f"Refreshed {name}"))

    def reload(self) -> None:
        """Reconcile again from the store without fetching."""
        self.refresh_data(fetch=False)

    def on_data_loaded(self, message: DataLoaded) -> None:
        data = message.data
        current = self.data
        if data is current:  # nothing changed since they were shown
            self.busy = ""
            if self.main is not None:
                self.main.show_state()
            return
        if (
            data.complete
            and current is not None
            and not current.complete
            and not current.stale
            and data.rows is current.rows
        ):
            self.data = data  # the plan of the rows already shown: nothing to redraw
            self.busy = ""
            if self.main is not None:
                self.main.show_state()
            return
        if current is not None and current.complete and not current.stale and not data.complete:
            return  # a saved state arriving after the fresh figures (never replaces them)
        self.data = data
        # Month-end data is hundreds of thousands of long-lived, acyclic objects (rows, plan lines):
        # left to the cyclic collector, every generation-2 pass rescans them all and a keystroke
        # stalls for a tenth of a second. Frozen, they are skipped; reference counting still frees
        # them when the next refresh replaces them.
        self.busy = "" if data.complete else "loading…"
        patched = message.companies if current is not None and current.complete else None
        for screen in self.screen_stack:
            if isinstance(screen, MainScreen):
                screen.show_data(data, patch=patched)
                continue
            show = getattr(screen, "show_data", None)
            if show is not None:
                show(data)
        freeze_long_lived()  # after the panes took them: their row indexes (a dict per pane) are as long-lived
        if message.save_after:
            self.call_after_refresh(self._save_later, data)  # after the frame that shows them
        if data is self.first_view and self._core is None:
            self.call_after_refresh(self._start_engine, self.full_refresh_on_start)  # after its frame

    def _save_later(self, data: ConsoleData) -> None:
        """Save a changed plan once the operator pauses (a re-encode of the whole view, in a thread:
        not while the next action is computed)."""
        if self._save_timer is not None:
            self._save_timer.stop()
            self._save_timer = None
        if self.save_delay <= 0:
            self._save_worker(data)
        else:
            self._save_timer = self.set_timer(self.save_delay, lambda: self._save_worker(self.data))

    @work(thread=True, group="save", exclusive=True, exit_on_error=False)
    def _save_worker(self, data: ConsoleData | None) -> None:
        self._save_timer = None
        if data is not None and self.data is data:  # a newer change saves itself
            self.core.save(data)

    def refusal(self, what: str, *, review: bool = False) -> str | None:
        """Why `what` cannot be done now (the engine or the figures are not loaded yet), or None."""
        if self._core is None:
            return LOADING_ENGINE.format(what=what)
        data = self.data
        if data is None:
            return f"The figures are still loading; {what} once they are shown."
        if data.stale:
            when = figures_time(data)
            return (
                f"The figures shown are from {when} and are being recomputed; {what} once the "
                "current figures are shown."
            )
        if not data.complete:
            return f"The plan is still being restored (a moment); {what} then."
        if review and self.recomputing:
            return f"The figures are being recomputed after a change; {what} once they are shown."
        return None

    def refuse(self, what: str, *, review: bool = False) -> bool:
        """Notify and return True when `what` must wait for current figures."""
        reason = self.refusal(what, review=review)
        if reason is not None:
            self.notify(reason, title="Not yet", severity="warning", timeout=6)
            return True
        return False

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if event.state == WorkerState.ERROR:
            error = worker.error
            self.busy = ""
            self.notify(f"{type(error).__name__}: {error}", severity="error", timeout=10)
        if worker.group == "refresh" and event.state in (WorkerState.SUCCESS, WorkerState.ERROR):
            self._arm_timer()

    def _arm_timer(self) -> None:
        if self._refresh_timer is not None:
            self._refresh_timer.stop()
            self._refresh_timer = None
        if self.refresh_interval:
            self._refresh_timer = self.set_timer(self.refresh_interval, self._scheduled_refresh)

    def _scheduled_refresh(self) -> None:
        self._refresh_timer = None
        if isinstance(self.screen, ModalScreen) or any(
            w.group in ("refresh", "actions", "sync") and w.is_running for w in self.workers
        ):
            self._arm_timer()  # skipped while a modal is open or something runs; try again later
            return
        self.refresh_data()

    # --- operator actions: one path, through the core ---------------------------------------------------

    def act_now(self, act: Act) -> Outcome:
        """Make `act` through the core (blocking: call from a thread). Raises ActionError (the
        figures shown are not current, the action is refused, the store moved meanwhile)."""
        from engine.actions import ActionError

        reason = self.refusal("change anything")
        if reason is not None:  # the figures the operator acted on are not current
            raise ActionError(reason)
        return self.core.act(act)

    def act(self, act: Act, success: str, then: Callable[[Outcome], None] | None = None) -> None:
        """Make `act` in a thread worker; the new figures arrive by the core's change feed."""
        self._act_worker(act, success, then)

    @work(thread=True, group="actions", exit_on_error=False)
    def _act_worker(self, act: Act, success: str, then: Callable[[Outcome], None] | None) -> None:
        from engine.actions import ActionError

        try:
            outcome = self.act_now(act)
        except ActionError as exc:
            self.post_message(ActionFailed(str(exc)))
            return
        except Exception as exc:
            self.post_message(ActionFailed(f"{type(exc).__name__}: {exc}"))
            return
        self.post_message(ActionSucceeded(success))
        if then is not None:
            self._from_thread(then, outcome)

    def run_engine(
        self, fn: Callable[[], object], success: str, then: Callable[[], None] | None = None
    ) -> None:
        """A store write that is not one of the core's actions (tests, tools): under the core's lock,
        refused when the figures are not current, then everything recomputed."""
        self._engine_worker(fn, success, then)

    @work(thread=True, group="actions", exit_on_error=False)
    def _engine_worker(self, fn: Callable[[], object], success: str, then: Callable[[], None] | None) -> None:
        reason = self.refusal("change anything")
        if reason is not None:
            self.post_message(ActionFailed(reason))
            return
        from engine.actions import ActionError

        try:
            self.core.write(fn)
        except ActionError as exc:
            self.post_message(ActionFailed(str(exc)))
            return
        except Exception as exc:
            self.post_message(ActionFailed(f"{type(exc).__name__}: {exc}"))
            return
        self.post_message(ActionSucceeded(success))
        if then is not None:
            self._from_thread(then)

    def on_action_failed(self, message: ActionFailed) -> None:
        self.notify(message.message, title="Refused", severity="error", timeout=10)

    def on_action_succeeded(self, message: ActionSucceeded) -> None:
        if message.message:
            self.notify(message.message, timeout=4)

    def make_executor(self) -> Any:
        if self.executor_factory is not None:
            return self.executor_factory(self.workspace)
        if self._core is None:
            raise RuntimeError("the engine is still loading")
        from engine.sync.executor import SyncExecutor

        workspace = self.loaded_workspace
        if workspace.psa is None:
            raise RuntimeError("no PSA connection is open")
        return SyncExecutor(workspace.store, workspace.psa)

    # --- global keys -----------------------------------------------------------------------------

    async def run_action(
        self,
        action: str | ActionParseResult,
        default_namespace: DOMNode | None = None,
        namespaces: Mapping[str, DOMNode] | None = None,
    ) -> bool:
        """Before the engine is loaded, a command that needs it says so in one line (NEEDS_ENGINE,
        tui.bindings) instead of running; navigation runs on the rows shown."""
        if self._core is None:
            name = action if isinstance(action, str) else action[1]
            command = NEEDS_ENGINE.get(name.split("(", 1)[0].rsplit(".", 1)[-1])
            if command is not None and self.engine_pending(command.description.lower()):
                return True
        return await super().run_action(action, default_namespace, namespaces)

    def engine_pending(self, what: str) -> bool:
        """True (and one line said) when the engine is not loaded yet: `what` waits for it."""
        if self._core is not None:
            return False
        self.notify(LOADING_ENGINE.format(what=what), title="Not yet", timeout=4)
        return True

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("edit_as_of", "edit_invoiced_through", "refresh") and isinstance(
            self.screen, ModalScreen
        ):
            return None
        return True

    async def action_quit(self) -> None:
        """q: during a running sync, ask first; yes stops after the line in flight, then quits."""
        from tui.screens.review import ReviewScreen

        running = next((s for s in self.screen_stack if isinstance(s, ReviewScreen) and s.running), None)
        if running is None:
            self.exit()
            return
        from tui.screens.confirm import ConfirmModal

        def answered(yes: bool | None) -> None:
            if yes:
                running.quit_after = True
                running.action_cancel_sync()

        body = (
            f"A sync is running ({len(running.outcomes)} of {len(running.lines)} lines done). Quit? "
            "It stops after the line in flight (every write is journaled), then the console closes."
        )
        self.push_screen(ConfirmModal("Quit during a sync", body), answered)

    def action_help(self) -> None:
        from tui.screens.help import HelpModal  # not needed for the first paint

        if not isinstance(self.screen, HelpModal):
            self.push_screen(HelpModal())

    def action_refresh(self) -> None:
        self.busy = "refreshing…"
        self.refresh_data(full=False)

    def action_refresh_customer(self, company_id: str, name: str) -> None:
        """The targeted refresh of one customer (the main screen's key names the one under the cursor)."""
        self.notify(f"Refreshing {name}…", timeout=3)
        self.refresh_customer(company_id, name)

    def action_edit_as_of(self) -> None:
        from tui.screens.edit_date import EditDateModal

        current = self.data.as_of if self.data else self.as_of

        def use(value: date) -> None:
            self.as_of = value
            self.notify(f"Plan computed as of {value.isoformat()}", timeout=4)
            self.reload()

        def done(value: date | None) -> None:
            if value is None:
                return
            today = self.clock().date()
            if value <= today:
                use(value)
                return
            # A future as-of treats usage periods that are not final today as final (issue 13).
            from tui.screens.confirm import ConfirmModal

            data = self.data
            provisional = sum(1 for x in data.plan.lines if x.provisional) if data and data.complete else 0
            body = (
                f"{value.isoformat()} is after today ({today.isoformat()}): the plan would treat vendor "
                f"figures that are not final today as final"
                + (f" ({provisional} provisional line(s) now)" if provisional else "")
                + f". Compute the plan as of {value.isoformat()} anyway?"
            )
            self.push_screen(
                ConfirmModal("As-of in the future", body), lambda yes: use(value) if yes else None
            )

        self.push_screen(EditDateModal("As-of date (the plan is computed for this day)", current, None), done)

    def action_edit_invoiced_through(self) -> None:
        from tui.screens.edit_date import EditDateModal

        current = self.data.invoiced_through if self.data else None

        def apply(value: date) -> None:  # in the modal's worker thread, through the core
            from engine.actions import ActionError
            from engine.console_core import Act

            if (value + timedelta(days=1)).day != 1:  # the date editor's own rule (issue 13)
                raise ActionError(
                    f"{value.isoformat()} is not the last day of a month: invoiced-through is the last "
                    "day already invoiced to customers, a month end (partners invoice a month at a time)."
                )
            self.act_now(Act("set_invoiced_through", day=value))

        def done(value: date | None) -> None:
            if value is not None:
                self.notify(f"Invoiced through {value.isoformat()}", timeout=4)

        self.push_screen(
            EditDateModal("Invoiced through (last day already invoiced to customers)", current, apply), done
        )


# --- entry point ------------------------------------------------------------------------------------


def _open_workspace(db_url: str | None) -> tuple[Any, Any]:
    """The configured workspace, else the sandbox. Returns (workspace, config or None). Secrets
    known from the start are registered for redaction first (tui.cli.scrub_outputs); the launch
    hint for the next launch is left once it is open (tui.launch)."""
    from engine.settings import load_config
    from engine.store.resolve import resolve_store
    from engine.workspace import open_workspace
    from tui.cli import scrub_outputs

    scrub_outputs(db_url)
    config = load_config()
    workspace = open_workspace(config, db_url=db_url)
    choice = getattr(workspace, "store_choice", None) or resolve_store(db_url, config)
    remember_launch(db_url, choice.url, workspace, config)
    return workspace, config


def remember_launch(db_url: str | None, url: str, workspace: Any, config: Any) -> None:
    """Leave the launch hint of this workspace for the next launch (tui.launch)."""
    from tui.launch import Hint, remember

    console = getattr(config, "console", None)
    remember(
        db_url,
        Hint(
            url=url,
            label=workspace.label,
            sandbox=bool(workspace.sandbox),
            as_of=getattr(workspace, "fixed_as_of", None),
            zone=str(getattr(workspace, "zone", "UTC")),
            theme=getattr(console, "theme", None),
            mouse=bool(getattr(console, "mouse", True)),
            keymap=dict(getattr(console, "keymap", None) or {}),
            refresh_interval=getattr(console, "refresh_interval", None),
        ),
    )


def prepare_console(
    *,
    db_url: str | None = None,
    no_mouse: bool = False,
    theme: str | None = None,
    opener: Callable[[str | None], tuple[Any, Any]] = _open_workspace,
    **options: Any,
) -> tuple[TrueupApp, bool]:
    """The console `trueup` runs, and whether it takes the mouse. With a launch hint for this
    configuration and a saved view in its SQLite store, the app paints that view at once and opens
    the workspace after the first frame; otherwise the workspace is opened first (tui.launch).
    `opener` (db_url -> (workspace, config)) and `options` (TrueupApp's) are the bench's: it
    launches this same path on its own store and clock."""
    from tui.launch import first_view, recall

    hint = recall(db_url)
    today = (options.get("clock") or datetime.now)().date()  # the day the app's clock gives
    view = first_view(hint, today, asked=options.get("as_of")) if hint is not None else None
    if hint is not None and view is not None:
        settings: dict[str, Any] = {
            "refresh_interval": float(hint.refresh_interval or DEFAULT_REFRESH_INTERVAL),
            "theme": theme or hint.theme,
            "keymap": hint.keymap,
            "full_refresh_on_start": True,
        }
        app = TrueupApp(
            None,
            open_workspace=lambda: opener(db_url)[0],
            first_view=view,
            label=hint.label,
            sandbox=hint.sandbox,
            **{**settings, **options},
        )
        return app, hint.mouse and not no_mouse
    workspace, config = opener(db_url)  # nothing to paint before the engine: the normal way
    console = getattr(config, "console", None)
    interval = float(
        getattr(console, "refresh_interval", DEFAULT_REFRESH_INTERVAL) or DEFAULT_REFRESH_INTERVAL
    )
    settings = {
        "refresh_interval": interval,
        "theme": theme or getattr(console, "theme", None),
        "keymap": dict(getattr(console, "keymap", None) or {}),
        "full_refresh_on_start": True,
    }
    app = TrueupApp(workspace, **{**settings, **options})
    return app, bool(getattr(console, "mouse", True)) and not no_mouse


def run_console(*, db_url: str | None = None, no_mouse: bool = False, theme: str | None = None) -> int:
    from engine.scrub import install_log_redaction

    install_log_redaction()
    app: TrueupApp | None = None
    try:
        app, mouse = prepare_console(db_url=db_url, no_mouse=no_mouse, theme=theme)
        result = app.run(mouse=mouse)
        if app.startup_error is not None:
            raise app.startup_error
        return int(result or 0) if app.return_code in (None, 0) else int(app.return_code or 1)
    except SystemExit as exc:
        return int(exc.code or 0) if isinstance(exc.code, int) else 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        message = re.sub(r"^\([\w.]+\)\s*", "", first).strip().rstrip(".") or type(exc).__name__
        print(f"trueup: the console could not start: {message}.")
        return 1
    finally:
        workspace = app.workspace if app is not None else None
        if app is not None and workspace is not None:
            try:  # on the loop the connectors ran on
                if app.engine_ready:
                    app.core.run_async(workspace.aclose())
                    app.core.close()
                else:
                    asyncio.run(workspace.aclose())
            except Exception:
                log.debug("closing the workspace failed", exc_info=True)
