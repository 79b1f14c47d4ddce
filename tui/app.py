"""TrueupApp: the console. It takes a workspace (store + PSA + refresh) and a clock, so tests build
it from a fixed scenario and date; `run_console` is what `trueup` with no subcommand runs."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from textual import work
from textual.app import App
from textual.screen import ModalScreen
from textual.worker import Worker, WorkerState

from engine.actions import ActionError, set_invoiced_through
from engine.store import plan_cache
from tui import model
from tui.bindings import REGISTRY, bindings
from tui.commands import RegistryCommands
from tui.messages import ActionFailed, ActionSucceeded, DataLoaded
from tui.model import ConsoleData
from tui.screens.main import MainScreen

DEFAULT_REFRESH_INTERVAL = 300.0
SAVED_STATE = "console"  # the name of the console's saved state in the store (engine.store.plan_cache)
log = logging.getLogger(__name__)
NO_COLOR_THEME = "ansi-dark"  # built in since Textual 8.2.5: the terminal's own colours, no palette of ours


class TrueupApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "trueup"
    BINDINGS = bindings("app")
    COMMANDS = App.COMMANDS | {RegistryCommands}

    def __init__(self, workspace: Any, *, clock: Callable[[], datetime] | None = None, as_of: date | None = None,
                 refresh_interval: float | None = DEFAULT_REFRESH_INTERVAL, theme: str | None = None,
                 keymap: dict[str, str] | None = None, executor_factory: Callable[[Any], Any] | None = None,
                 full_refresh_on_start: bool = False,
                 loader: Callable[[date | None, date], ConsoleData] | None = None) -> None:
        # NO_COLOR (no-color.org): ANSI colours only, and Textual strips even those (its NoColor filter),
        # so what remains is text and text styles; states are words (TODO, pending, ignored, NOT BOUND).
        no_color = bool(os.environ.get("NO_COLOR"))
        super().__init__(ansi_color=True if no_color else None)
        if no_color:
            self.theme = NO_COLOR_THEME
        self.workspace = workspace
        self.clock = clock or datetime.now
        self.as_of = as_of
        self.refresh_interval = refresh_interval
        self.keymap = dict(keymap or {})
        self.executor_factory = executor_factory
        self.full_refresh_on_start = full_refresh_on_start
        self.data: ConsoleData | None = None
        self.show_ignored = False
        self.busy = ""
        self.animation_level = "none"
        self._store_lock = threading.Lock()
        self._refresh_timer: Any = None
        self._initial_theme = theme
        self.refresh_count = 0
        self.loader = loader  # (as_of, today) -> ConsoleData; default: reconcile the workspace's store
        self._recomputes = 0  # recomputes under way (refresh, after an action): see `recomputing`
        self._recomputes_lock = threading.Lock()
        self.saves = 0  # saved states written (tests)

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
        self.refresh_data(full=self.full_refresh_on_start, restore=True)

    @property
    def main(self) -> MainScreen | None:
        for screen in self.screen_stack:
            if isinstance(screen, MainScreen):
                return screen
        return None

    # --- data ----------------------------------------------------------------------------------

    @property
    def recomputing(self) -> bool:
        """A recompute is under way: the figures shown are about to change."""
        return self._recomputes > 0

    @contextmanager
    def _recomputing(self) -> Iterator[None]:
        with self._recomputes_lock:
            self._recomputes += 1
        try:
            yield
        finally:
            with self._recomputes_lock:
                self._recomputes -= 1

    def _wanted(self) -> tuple[date | None, date]:
        """(the as-of asked for — None: the store's own —, today): what the figures are computed for."""
        today = self.clock().date()
        as_of = self.as_of
        if as_of is None and hasattr(self.workspace, "today"):
            as_of = self.workspace.today()
        return as_of, today

    @property
    def saves_state(self) -> bool:
        """Are the figures saved in (and restored from) the store? Not with a custom loader."""
        store = getattr(self.workspace, "store", None)
        return self.loader is None and getattr(store, "engine", None) is not None

    @staticmethod
    def _code() -> str:
        return plan_cache.code_version(Path(model.__file__))

    @staticmethod
    def _decoded(saved: plan_cache.SavedState) -> ConsoleData:
        """The rows of a saved state, stamped with where they come from (blocking)."""
        assert saved.view is not None
        data = model.decode_view(saved.view)
        data.revision, data.computed_at, data.computed_for = saved.revision, saved.computed_at, (saved.as_of,
                                                                                                  saved.today)
        data.saved = True
        return data

    @staticmethod
    def _shows(shown: ConsoleData | None, revision: int | None, wanted: tuple[date | None, date]) -> bool:
        """Are the figures shown computed from this store revision, for this as-of and day?"""
        return (shown is not None and not shown.stale and revision is not None and shown.revision == revision
                and shown.computed_for == wanted)

    def saved_view(self) -> ConsoleData | None:
        """The last saved state's rows — current or stale (`data.stale`) — or None (blocking)."""
        if not self.saves_state:
            return None
        try:
            store = self.workspace.store
            with self._store_lock:
                as_of, today = self._wanted()
                revision = plan_cache.store_revision(store)
                saved = plan_cache.load_state(store, SAVED_STATE, plan=False)
            if saved is None or saved.view is None:
                return None
            data = self._decoded(saved)
        except Exception:  # a saved state is an optimisation: any doubt, and it is not shown
            log.warning("the saved console state could not be read", exc_info=True)
            return None
        data.stale = not saved.current_for(revision, as_of, today, self._code())
        return data

    def _restore(self, shown: ConsoleData | None, revision: int | None, wanted: tuple[date | None, date]
                 ) -> ConsoleData | None:
        """The saved state if it is current (its plan restored into the rows already shown when they
        are the same state), else None. Caller holds the store lock."""
        store = self.workspace.store
        same = self._shows(shown, revision, wanted)
        saved = plan_cache.load_state(store, SAVED_STATE, view=not same)
        if saved is None or saved.plan is None or not saved.current_for(revision, *wanted, self._code()):
            return None
        kept = same and shown is not None and saved.computed_at == shown.computed_at
        view = shown if kept and shown is not None else self._decoded(saved)
        return model.restore_plan(view, saved.plan)

    def load_data(self) -> ConsoleData:
        """The figures for the store as it is now (blocking: call from a thread): those shown when
        nothing was written since, else the saved state when it is current, else reconciled afresh
        (to be saved with `save_data`)."""
        with self._store_lock:
            as_of, today = self._wanted()
            if self.loader is not None:
                return self.loader(as_of, today)
            revision = None
            if self.saves_state:
                store = self.workspace.store
                shown = self.data
                try:
                    revision = plan_cache.store_revision(store)
                    if shown is not None and shown.complete and self._shows(shown, revision, (as_of, today)):
                        return shown  # nothing was written since: the figures shown are current
                    restored = self._restore(shown, revision, (as_of, today))
                except Exception:
                    log.warning("the saved console state could not be restored", exc_info=True)
                    restored = None
                if restored is not None:
                    return restored
            data = model.load(self.workspace.store, as_of, today=today)
            data.revision, data.computed_for, data.computed_at = revision, (as_of, today), datetime.now(UTC)
            return data

    def save_data(self, data: ConsoleData) -> None:
        """Save freshly computed figures with the revision they were computed from (blocking; a
        failure is logged, never shown: the next launch simply recomputes)."""
        if not self.saves_state or data.saved or data.computed_for is None:
            return
        try:
            view, plan = model.encode_view(data), model.encode_plan(data)
            with self._store_lock:
                saved = plan_cache.save_state(
                    self.workspace.store, SAVED_STATE, revision=data.revision, as_of=data.computed_for[0],
                    today=data.computed_for[1], code=self._code(), view=view, plan=plan,
                    computed_at=data.computed_at)
            data.saved = True
            if saved:
                self.saves += 1
        except model.NotSaveable as exc:
            log.info("console state not saved: %s", exc)
        except Exception:
            log.warning("the console state could not be saved", exc_info=True)

    @work(exclusive=True, group="refresh", exit_on_error=False)
    async def refresh_data(self, full: bool = False, fetch: bool = True, restore: bool = False) -> None:
        if restore:  # launch: paint the last saved state at once (current, or stale with a banner)
            saved = await asyncio.to_thread(self.saved_view)
            if saved is not None:
                self.post_message(DataLoaded(saved))
        main = self.main
        if main is not None:
            main.update_header("refreshing…")
        with self._recomputing():
            if fetch:
                def waiting(progress: Any) -> None:  # another process holds the store's refresh lock
                    if getattr(progress, "stage", None) == "waiting":
                        self.notify(str(progress.message), severity="warning", timeout=10)

                try:
                    result = await self.workspace.refresh(waiting, full=full)
                except Exception as exc:
                    result = None
                    self.notify(f"Refresh failed: {exc}", severity="error", timeout=10)
                for error in getattr(result, "errors", None) or []:
                    self.notify(str(error), severity="error", timeout=10)
                for warning in getattr(result, "warnings", None) or []:
                    self.notify(str(warning), severity="warning", timeout=10)
                await self._flag_if_outdated()
            data = await asyncio.to_thread(self.load_data)
        self.refresh_count += 1
        self.post_message(DataLoaded(data))
        await asyncio.to_thread(self.save_data, data)

    async def _flag_if_outdated(self) -> None:
        """The refresh wrote to the store (or another operator did): until the recompute lands, the
        figures shown are marked stale (banner; review, sync and edits wait)."""
        shown = self.data
        if not self.saves_state or shown is None or shown.stale or shown.revision is None:
            return
        try:
            revision = await asyncio.to_thread(plan_cache.store_revision, self.workspace.store)
        except Exception:
            return
        if revision != shown.revision and self.data is shown:
            shown.stale = True
            if self.main is not None:
                self.main.show_state()

    def reload(self) -> None:
        """Reconcile again from the store without fetching (after an operator action)."""
        self.refresh_data(fetch=False)

    def on_data_loaded(self, message: DataLoaded) -> None:
        data = message.data
        current = self.data
        if data is current:  # nothing changed since they were shown
            self.busy = ""
            if self.main is not None:
                self.main.show_state()
            return
        if (data.complete and current is not None and not current.complete and not current.stale
                and data.rows is current.rows):
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
        for screen in self.screen_stack:
            show = getattr(screen, "show_data", None)
            if show is not None:
                show(data)
        gc.freeze()  # after the panes took them: their row indexes (a dict per pane) are as long-lived

    def refusal(self, what: str, *, review: bool = False) -> str | None:
        """Why `what` cannot be done now (the figures are not current yet), or None."""
        data = self.data
        if data is None:
            return f"The figures are still loading; {what} once they are shown."
        if data.stale:
            when = model.figures_time(data)
            return (f"The figures shown are from {when} and are being recomputed; {what} once the "
                    "current figures are shown.")
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
                w.group in ("refresh", "actions", "sync") and w.is_running for w in self.workers):
            self._arm_timer()  # skipped while a modal is open or something runs; try again later
            return
        self.refresh_data()

    # --- engine actions --------------------------------------------------------------------------

    def run_engine(self, fn: Callable[[], object], success: str, then: Callable[[], None] | None = None) -> None:
        self._engine_worker(fn, success, then)

    @work(thread=True, group="actions", exit_on_error=False)
    def _engine_worker(self, fn: Callable[[], object], success: str, then: Callable[[], None] | None) -> None:
        reason = self.refusal("change anything")
        if reason is not None:  # the figures the operator acted on are not current
            self.post_message(ActionFailed(reason))
            return
        try:
            with self._store_lock:
                fn()
        except ActionError as exc:
            self.post_message(ActionFailed(str(exc)))
            return
        except Exception as exc:
            self.post_message(ActionFailed(f"{type(exc).__name__}: {exc}"))
            return
        with self._recomputing():
            data = self.load_data()
        self.post_message(DataLoaded(data))
        self.post_message(ActionSucceeded(success))
        if then is not None:
            self.call_from_thread(then)
        self.save_data(data)

    def on_action_failed(self, message: ActionFailed) -> None:
        self.notify(message.message, title="Refused", severity="error", timeout=10)

    def on_action_succeeded(self, message: ActionSucceeded) -> None:
        self.notify(message.message, timeout=4)

    def make_executor(self) -> Any:
        if self.executor_factory is not None:
            return self.executor_factory(self.workspace)
        try:
            from engine.sync.executor import SyncExecutor
        except ModuleNotFoundError as exc:
            raise RuntimeError("the sync executor is not part of this build") from exc
        if getattr(self.workspace, "psa", None) is None:
            raise RuntimeError("no PSA connection is open")
        return SyncExecutor(self.workspace.store, self.workspace.psa)

    # --- global keys -----------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("edit_as_of", "edit_invoiced_through", "refresh") and isinstance(self.screen, ModalScreen):
            return None
        return True

    def action_help(self) -> None:
        from tui.screens.help import HelpModal  # not needed for the first paint

        if not isinstance(self.screen, HelpModal):
            self.push_screen(HelpModal())

    def action_refresh(self) -> None:
        self.busy = "refreshing…"
        self.refresh_data(full=False)

    def action_edit_as_of(self) -> None:
        from tui.screens.edit_date import EditDateModal

        current = self.data.as_of if self.data else self.as_of

        def done(value: date | None) -> None:
            if value is not None:
                self.as_of = value
                self.notify(f"Plan computed as of {value.isoformat()}", timeout=4)
                self.reload()

        self.push_screen(EditDateModal("As-of date (the plan is computed for this day)", current, None), done)

    def action_edit_invoiced_through(self) -> None:
        from tui.screens.edit_date import EditDateModal

        current = self.data.invoiced_through if self.data else None
        store = self.workspace.store

        def apply(value: date) -> None:
            with self._store_lock:
                set_invoiced_through(store, value)

        def done(value: date | None) -> None:
            if value is not None:
                self.notify(f"Invoiced through {value.isoformat()}", timeout=4)
                self.reload()

        self.push_screen(EditDateModal("Invoiced through (last day already invoiced to customers)", current,
                                       apply), done)


# --- entry point ------------------------------------------------------------------------------------


def _open_workspace(db_url: str | None) -> tuple[Any, Any]:
    """The configured workspace, else the sandbox. Returns (workspace, config or None)."""
    try:
        from engine.workspace import open_workspace
    except ModuleNotFoundError as exc:
        if exc.name != "engine.workspace":
            raise
        from engine.sandbox.demo import build_demo_scenario
        from engine.store import Store

        store = Store.memory()
        store.import_scenario(build_demo_scenario())
        return StoreWorkspaceFactory(store), None
    from engine.settings import load_config

    config = load_config()
    return open_workspace(config, db_url=db_url), config


def StoreWorkspaceFactory(store: Any) -> Any:  # noqa: N802 - reads as a constructor
    from tui.workspace import StoreWorkspace

    return StoreWorkspace(store, label="SANDBOX (in memory)", sandbox=True)


def run_console(*, db_url: str | None = None, no_mouse: bool = False, theme: str | None = None) -> int:
    workspace = None
    try:
        workspace, config = _open_workspace(db_url)
        console = getattr(config, "console", None)
        interval = float(getattr(console, "refresh_interval", DEFAULT_REFRESH_INTERVAL) or DEFAULT_REFRESH_INTERVAL)
        theme = theme or getattr(console, "theme", None)
        mouse = bool(getattr(console, "mouse", True)) and not no_mouse
        keymap = dict(getattr(console, "keymap", None) or {})
        app = TrueupApp(workspace, refresh_interval=interval, theme=theme, keymap=keymap,
                        full_refresh_on_start=True)
        result = app.run(mouse=mouse)
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
        if workspace is not None and hasattr(workspace, "aclose"):
            try:
                asyncio.run(workspace.aclose())
            except Exception:
                pass
