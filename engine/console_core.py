"""The console's headless core: it owns the plan on screen.

What it owns, and nothing of Textual:
* **the figures** (`held`): the plan and the rows built from it (by a `View`, the console's
  row builder and codec — plain Python handed in, so the core never imports the console), with
  the store revision they were computed from, for which as-of and day;
* **the pipeline** refresh → reconcile → rows → saved state: the sweep and the targeted refresh
  of one customer (through the `Workspace`), a full reconcile when the store moved under it, the
  saved state painted at launch (`engine.store.plan_cache`);
* **operator actions** (`act`): validated against the plan it holds — never a fresh full plan —
  and written under one lock with an optimistic check on the store revision (a write made since
  the figures were computed refuses the action and recomputes); every action takes this one path;
* **the plan by customer** (`PlanParts`): an action or a targeted refresh recomputes only the
  customers it touched (`engine.store.customer_scope`), and the view patches only their rows;
* **a change feed** (`subscribe`): each new set of figures, with the customers it touched.

Every method here blocks (store and HTTP calls): the console calls them from thread workers and
turns the feed into messages. The async workspace calls (refresh, HTTP) run on one event loop of
the core's own, in a thread, so connectors keep one loop for their whole life."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from itertools import chain
from pathlib import Path
from typing import Any, Generic, Literal, Protocol, TypeVar

from engine import actions
from engine.keys import subject_of
from engine.net import Net, NetSum, OldLine, nets_by_kind
from engine.plan import Finding, LineKind, Plan, PlanLine, Totals
from engine.scenario import BillOption, Scenario
from engine.store.saved_state import SAVED_STATE as SAVED_STATE

log = logging.getLogger(__name__)

CENTS_ZERO = Decimal("0.00")
SEVERITY_ORDER = {"error": 0, "warning": 1}


# --- what the core needs from its surroundings -----------------------------------------------------


class RefreshReport(Protocol):
    @property
    def errors(self) -> Sequence[object]: ...


class Workspace(Protocol):
    """What the console calls on a workspace (engine.workspace.Workspace; tui.workspace.StoreWorkspace)."""

    @property
    def store(self) -> Any: ...  # engine.store.Store (Any: a test may hand in a store double)

    @property
    def label(self) -> str: ...

    @property
    def sandbox(self) -> bool: ...

    @property
    def psa(self) -> Any: ...  # the PSA connector the sync executor writes through (None: none open)

    @property
    def freshness(self) -> Mapping[str, datetime | None]: ...

    def today(self) -> date | None:
        """The day the plan is for (None: the store's own as-of)."""
        ...

    async def refresh(self, progress: Any = None, *, full: bool = False) -> RefreshReport: ...

    async def refresh_customer(self, company: str, progress: Any = None) -> RefreshReport: ...

    async def aclose(self) -> None: ...


class Figures(Protocol):
    """What the core reads and stamps on the figures a `View` builds."""

    plan: Plan
    revision: int | None
    computed_at: datetime | None
    computed_for: tuple[date | None, date] | None
    stale: bool
    complete: bool
    saved: bool

    @property
    def psa_lines(self) -> Mapping[str, OldLine]:
        """The PSA lines the plan's lines change, by id: what their invoice change is read against."""
        ...


F = TypeVar("F", bound=Figures)
_T = TypeVar("_T")


class View(Protocol[F]):
    """The console's rows and saved-state codec (tui.model): plain functions of plain data."""

    # Read-only properties (the console computes them; nothing here sets them), so a view may
    # implement them as properties or as plain attributes.
    @property
    def code_files(self) -> tuple[Path, ...]:
        """Sources the rows are computed by (a saved state of other code is stale)."""
        ...

    @property
    def not_saveable(self) -> type[Exception]:
        """Raised by encode_view when a text cannot be laid out."""
        ...

    def load(self, store: Any, as_of: date | None, today: date) -> F:
        """Every row of the store's full plan (read the fast way, reconciled)."""
        ...

    def patch(
        self,
        shown: F,
        scenario: Scenario,
        part: Plan,
        plan: Plan,
        companies: set[str],
        topology: Any,
        today: date | None,
        kinds: Any = None,
        nets: Mapping[LineKind, Net] | None = None,
    ) -> F:
        """`shown` with the rows of `companies` rebuilt from `part`; `kinds`: the plan's figures
        per line kind (PlanParts.kinds), `nets`: its invoice change per line kind
        (PlanParts.kind_net), so the summary needs no pass over every line."""
        ...

    def encode_view(self, data: F) -> bytes: ...

    def decode_view(self, blob: bytes) -> F: ...

    def encode_plan(self, data: F) -> bytes: ...

    def restore_plan(self, view: F, blob: bytes) -> F: ...


@dataclass(frozen=True)
class Change(Generic[F]):
    """New figures. `companies`: the customers recomputed (their rows patched), None: all of them."""

    data: F
    companies: frozenset[str] | None = None


class StalePlan(actions.ActionError):
    """The store was written since the figures shown were computed: the action was not made."""


# --- operator actions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Act:
    """One operator action. `kind` names it; the fields it uses are its arguments."""

    kind: Literal[
        "ignore",
        "restore",
        "set_effective_date",
        "map_company",
        "unmap_company",
        "generate_mappings",
        "bind_product",
        "unbind_product",
        "set_invoiced_through",
        "map_agreement",
    ]
    keys: tuple[str, ...] = ()
    mode: Literal["until_restored", "this_change"] = "until_restored"
    reason: str | None = None
    day: date | None = None
    vendor_id: str = ""
    psa_id: str = ""
    sub_product: str | None = None
    free: bool | None = None  # None: a re-bind keeps the binding's free flag
    taxable: bool | None | actions.Keep = actions.KEEP  # KEEP: a re-bind keeps the binding's
    bill_option: BillOption | None = None  # None: a re-bind keeps the binding's
    user: str | None = None


@dataclass
class Outcome:
    """What an action did: `result` (the engine's return value), the customers it touched."""

    result: object = None
    companies: frozenset[str] | None = None


# --- the plan by customer ----------------------------------------------------------------------------


@dataclass
class PlanParts:
    """The held plan cut by vendor company: lines, ignored lines and findings of each, and the
    figures of each company's lines — cached here, recomputed only for the companies a recompute
    replaces, so the plan's summary (the Overview) is a sum over companies, never over lines."""

    lines: dict[str, list[PlanLine]] = field(default_factory=lambda: defaultdict(list))
    ignored: dict[str, list[PlanLine]] = field(default_factory=lambda: defaultdict(list))
    findings: dict[str, list[Finding]] = field(default_factory=lambda: defaultdict(list))
    # per company and line kind: [lines, total price, total cost, provisional lines] of the shown lines
    sums: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    # per company and line kind: the invoice change of the shown lines (engine.net.line_net, against
    # the PSA lines they change)
    kind_nets: dict[str, dict[LineKind, Net]] = field(default_factory=dict)
    # the whole plan's figures per line kind: the sums of the two above over every company, kept
    # as companies come and go (`_count`), so a recompute of one customer sums no other's
    _kind_totals: dict[str, list[Any]] = field(default_factory=dict, repr=False)
    _net_totals: dict[LineKind, NetSum] = field(default_factory=dict, repr=False)
    # the findings' sort keys of the last `plan()`, by finding object (id -> (finding, key))
    _finding_keys: dict[int, tuple[Finding, tuple[Any, ...]]] = field(default_factory=dict, repr=False)

    def _sum(self, company: str, psa_lines: Mapping[str, OldLine]) -> None:
        """A company's figures from its lines, counted into the plan's."""
        acc: dict[str, list[Any]] = {}
        lines = self.lines.get(company, ())
        for line in lines:
            figures = acc.get(line.kind)
            if figures is None:
                figures = acc[line.kind] = [0, CENTS_ZERO, CENTS_ZERO, 0]
            figures[0] += 1
            figures[1] += line.total_price
            figures[2] += line.total_cost
            figures[3] += line.provisional
        self.sums[company] = acc
        self.kind_nets[company] = nets_by_kind(lines, psa_lines)
        self._count(company, 1)

    def _count(self, company: str, sign: Literal[1, -1]) -> None:
        """Add a company's figures to the plan's (1), or take them back (-1). A kind left with no
        line leaves the totals (its sums are then exactly zero: Decimal sums do not round)."""
        totals = self._kind_totals
        for kind, figures in self.sums.get(company, {}).items():
            total = totals.get(kind)
            if total is None:
                total = totals[kind] = [0, CENTS_ZERO, CENTS_ZERO, 0]
            for i, value in enumerate(figures):
                total[i] += value if sign > 0 else -value
            if not total[0]:
                del totals[kind]
        net_totals = self._net_totals
        for kind, net in self.kind_nets.get(company, {}).items():
            into = net_totals.get(kind)
            if into is None:
                into = net_totals[kind] = NetSum()
            if sign > 0:
                into.add(net)
            else:
                into.remove(net)
            if not into.lines:
                del net_totals[kind]

    def _drop(self, company: str) -> None:
        """A company's parts and figures out, its figures taken back from the plan's."""
        self._count(company, -1)
        cached: tuple[dict[str, Any], ...] = (
            self.lines,
            self.ignored,
            self.findings,
            self.sums,
            self.kind_nets,
        )
        for figures in cached:
            figures.pop(company, None)

    def kinds(self) -> dict[Any, tuple[int, Decimal, int]]:
        """Per line kind of the whole plan: (lines, total price, provisional lines)."""
        return {k: (v[0], v[1], v[3]) for k, v in self._kind_totals.items()}

    def kind_net(self) -> dict[LineKind, Net]:
        """Per line kind of the whole plan: the invoice change of its lines."""
        return {k: v.net() for k, v in self._net_totals.items()}

    @classmethod
    def of(cls, plan: Plan, topology: Any, psa_lines: Mapping[str, OldLine]) -> PlanParts:
        """`plan` cut by company; `psa_lines`: the PSA lines its lines change, by id (the figures'
        own — what a full build of the rows reads the lines' invoice change against)."""
        parts = cls()
        for line in plan.lines:
            parts.lines[line.company_id].append(line)
        for line in plan.ignored_lines:
            parts.ignored[line.company_id].append(line)
        for finding in plan.findings:
            company = topology.company_of_finding(finding.subject)
            if company is None:
                raise ValueError(f"finding {finding.code} {finding.subject} belongs to no customer")
            parts.findings[company].append(finding)
        for company in parts.lines:
            parts._sum(company, psa_lines)
        return parts

    def replace(
        self, companies: Iterable[str], part: Plan, topology: Any, psa_lines: Mapping[str, OldLine]
    ) -> None:
        """The parts of `companies` replaced by `part` (their plan, reconciled afresh; `psa_lines`:
        the PSA lines read with it). Every company `part` holds is replaced too, its cached figures
        with it, whether it was asked for or not: figures kept from before would be wrong money."""
        fresh = PlanParts.of(part, topology, psa_lines)
        for company in {*companies, *fresh.lines, *fresh.ignored, *fresh.findings}:
            self._drop(company)
        self.lines.update(fresh.lines)
        self.ignored.update(fresh.ignored)
        self.findings.update(fresh.findings)
        self.sums.update(fresh.sums)
        self.kind_nets.update(fresh.kind_nets)
        for company in fresh.sums:
            self._count(company, 1)

    def plan(self, as_of: date, invoiced_through: date, configurations: set[str]) -> Plan:
        """The full plan, in the order `reconcile` gives it: lines by (company, subscription, …) —
        each company's own are in that order already —, ignored lines as generated (subscriptions
        in company order, then billing configurations), findings by (severity, code, subject).
        Concatenated in C (`chain`), the findings' sort keys kept per finding object (frozen), so a
        per-customer recompute does not redo the whole plan's Python work."""
        companies = sorted(self.lines)
        lines = list(chain.from_iterable(map(self.lines.__getitem__, companies)))
        ignored_all = list(chain.from_iterable(map(self.ignored.__getitem__, sorted(self.ignored))))
        ignored = [x for x in ignored_all if x.subscription_id not in configurations] + sorted(
            (x for x in ignored_all if x.subscription_id in configurations), key=lambda x: x.subscription_id
        )
        keys = self._finding_keys
        fresh: dict[int, tuple[Finding, tuple[Any, ...]]] = {}

        def order(f: Finding) -> tuple[Any, ...]:
            hit = keys.get(id(f))
            key = hit[1] if hit is not None and hit[0] is f else finding_order(f)
            fresh[id(f)] = (f, key)
            return key

        findings = sorted(chain.from_iterable(self.findings.values()), key=order)
        self._finding_keys = fresh
        price = sum((f[1] for f in self._kind_totals.values()), CENTS_ZERO)
        cost = sum((f[2] for f in self._kind_totals.values()), CENTS_ZERO)
        totals = Totals(price=price, cost=cost, ignored=len(ignored))
        return Plan.model_construct(
            as_of=as_of,
            invoiced_through=invoiced_through,
            lines=lines,
            findings=findings,
            totals=totals,
            ignored_lines=ignored,
        )


def finding_order(f: Finding) -> tuple[Any, ...]:
    """Where a finding sorts in the plan: (severity, code, subject) — as `reconcile` orders them."""
    return (SEVERITY_ORDER[f.severity], f.code, sorted(f.subject.items()))


# --- the core ------------------------------------------------------------------------------------------


class ConsoleCore(Generic[F]):
    def __init__(
        self,
        workspace: Workspace,
        view: View[F],
        *,
        as_of: Callable[[], date | None],
        today: Callable[[], date],
        loader: Callable[[date | None, date], F] | None = None,
    ) -> None:
        self.workspace = workspace
        self.view = view
        self._as_of = as_of  # the as-of the operator asked for (None: the workspace's)
        self._today = today
        self.loader = loader  # (as_of, today) -> figures: a fixed source (benchmarks); nothing saved
        self.lock = threading.RLock()  # every store write, and every read of revision + figures together
        self._refreshing = threading.Lock()  # one refresh at a time: a customer's waits behind the sweep
        self.held: F | None = None  # the figures the core holds (the plan actions are validated against)
        self.parts: PlanParts | None = None
        self.topology: Any = None
        self._listeners: list[Callable[[Change[F]], None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._recomputes = 0
        self.saves = 0  # saved states written (tests)
        self.recomputed: list[frozenset[str] | None] = []  # what each recompute covered (tests, bench)

    # --- the change feed ----------------------------------------------------------------------------

    def subscribe(self, listener: Callable[[Change[F]], None]) -> None:
        self._listeners.append(listener)

    def _publish(self, data: F, companies: frozenset[str] | None = None) -> None:
        for listener in self._listeners:
            listener(Change(data, companies))

    # --- the workspace's async calls, on the core's own loop -----------------------------------------

    def run_async(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Run a workspace coroutine on the core's event loop (a thread of its own) and wait."""
        if self._loop is None:
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="trueup-io", daemon=True).start()
            self._loop = loop
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def close(self) -> None:
        loop, self._loop = self._loop, None
        if loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)

    # --- what the figures are for, and are they current --------------------------------------------

    @property
    def recomputing(self) -> bool:
        return self._recomputes > 0

    def wanted(self) -> tuple[date | None, date]:
        """(the as-of asked for — None: the store's own —, today)."""
        as_of = self._as_of()
        if as_of is None:
            as_of = self.workspace.today()
        return as_of, self._today()

    @property
    def saves_state(self) -> bool:
        """Are the figures saved in (and restored from) the store? Not with a fixed loader."""
        return self.loader is None and getattr(self.workspace.store, "engine", None) is not None

    def code(self) -> str:
        from engine.store import plan_cache

        return plan_cache.code_version(*self.view.code_files)

    def revision(self) -> int | None:
        from engine.store import plan_cache

        return plan_cache.store_revision(self.workspace.store) if self.saves_state else None

    def _stamp(
        self,
        data: F,
        revision: int | None,
        wanted: tuple[date | None, date],
        computed_at: datetime | None = None,
    ) -> F:
        data.revision, data.computed_for = revision, wanted
        data.computed_at = computed_at or datetime.now(UTC)
        return data

    def _decoded(self, saved: Any) -> F:
        data = self.view.decode_view(saved.view)
        data.revision, data.computed_at, data.computed_for = (
            saved.revision,
            saved.computed_at,
            (saved.as_of, saved.today),
        )
        data.saved = True
        return data

    @staticmethod
    def shows(shown: Figures | None, revision: int | None, wanted: tuple[date | None, date]) -> bool:
        return (
            shown is not None
            and not shown.stale
            and revision is not None
            and shown.revision == revision
            and shown.computed_for == wanted
        )

    # --- the saved state -----------------------------------------------------------------------------

    def saved_view(self) -> F | None:
        """The last saved state's rows — current or stale (`stale`) — or None."""
        if not self.saves_state:
            return None
        from engine.store import plan_cache

        try:
            with self.lock:
                as_of, today = self.wanted()
                revision = plan_cache.store_revision(self.workspace.store)
                saved = plan_cache.load_state(self.workspace.store, SAVED_STATE, plan=False)
            if saved is None or saved.view is None:
                return None
            data = self._decoded(saved)
        except Exception:  # a saved state is an optimisation: any doubt, and it is not shown
            log.warning("the saved console state could not be read", exc_info=True)
            return None
        data.stale = not saved.current_for(revision, as_of, today, self.code())
        return data

    def verify(self, shown: F) -> bool:
        """Is `shown` — a saved view read before this core existed, with the bare driver
        (tui.launch) — current for the store now: the same revision, as-of and day? (Its code was
        checked by whoever read it.) False marks it stale; a stale one stays stale."""
        if not self.saves_state:
            return False
        try:
            with self.lock:
                return self.shows(shown, self.revision(), self.wanted())
        except Exception:  # the store cannot say: not current
            log.warning("the store's revision could not be read", exc_info=True)
            return False

    def _restore(self, shown: F | None, revision: int | None, wanted: tuple[date | None, date]) -> F | None:
        from engine.store import plan_cache

        same = self.shows(shown, revision, wanted)
        saved = plan_cache.load_state(self.workspace.store, SAVED_STATE, view=not same)
        if saved is None or saved.plan is None or not saved.current_for(revision, *wanted, self.code()):
            return None
        kept = same and shown is not None and saved.computed_at == shown.computed_at
        view = shown if kept and shown is not None else self._decoded(saved)
        return self.view.restore_plan(view, saved.plan)

    def load(self, shown: F | None = None) -> F:
        """The figures for the store as it is now: `shown` when nothing was written since, else the
        saved state when it is current, else reconciled afresh (saved later with `save`). The
        figures returned are the ones the core holds from now on."""
        with self.lock:
            self._recomputes += 1
            try:
                data = self._load(shown)
            finally:
                self._recomputes -= 1
            if data.complete and data is not self.held:
                self.held, self.parts = data, None
            return data

    def _load(self, shown: F | None) -> F:
        as_of, today = self.wanted()
        if self.loader is not None:
            return self.loader(as_of, today)
        revision = None
        if self.saves_state:
            try:
                revision = self.revision()
                if shown is not None and shown.complete and self.shows(shown, revision, (as_of, today)):
                    return shown  # nothing was written since: the figures shown are current
                restored = self._restore(shown, revision, (as_of, today))
            except Exception:
                log.warning("the saved console state could not be restored", exc_info=True)
                restored = None
            if restored is not None:
                return restored
        self.recomputed.append(None)
        data = self.view.load(self.workspace.store, as_of, today)
        return self._stamp(data, revision, (as_of, today))

    def save(self, data: F) -> None:
        """Save freshly computed figures with the revision they were computed from (a failure is
        logged, never shown: the next launch simply recomputes)."""
        if not self.saves_state or data.saved or data.computed_for is None:
            return
        from engine.store import plan_cache

        try:
            view, plan = self.view.encode_view(data), self.view.encode_plan(data)
            with self.lock:
                saved = plan_cache.save_state(
                    self.workspace.store,
                    SAVED_STATE,
                    revision=data.revision,
                    as_of=data.computed_for[0],
                    today=data.computed_for[1],
                    code=self.code(),
                    view=view,
                    plan=plan,
                    computed_at=data.computed_at,
                )
            data.saved = True
            if saved:
                self.saves += 1
        except self.view.not_saveable as exc:
            log.info("console state not saved: %s", exc)
        except Exception:
            log.warning("the console state could not be saved", exc_info=True)

    def outdated(self, shown: F | None) -> bool:
        """Were the figures shown computed from an older store revision?"""
        if not self.saves_state or shown is None or shown.stale or shown.revision is None:
            return False
        try:
            return self.revision() != shown.revision
        except Exception:
            return False

    # --- refresh -------------------------------------------------------------------------------------

    def refresh(self, *, full: bool = False, progress: Any = None) -> RefreshReport | None:
        """The sweep (both services, then the store). `progress` hears the refresh's stages (one of
        them "waiting": another process holds the store's refresh lock). Raises what the workspace
        raises."""
        with self._refreshing:
            return self.run_async(self.workspace.refresh(progress, full=full))

    def refresh_customer(self, company_id: str) -> RefreshReport | None:
        """The targeted refresh of one customer (waits behind a running sweep), then that customer's
        figures recomputed and published. Raises what the workspace raises (UnknownCompany…)."""
        before = self.revision()
        with self._refreshing:
            report = self.run_async(self.workspace.refresh_customer(company_id))
        with self.lock:
            after = self.revision()
            held = self.held
            if held is None or after == before:
                return report
            if held.revision != before or after is None or before is None:
                self._reload()
            else:
                self._recompute({company_id}, after)
        return report

    # --- actions -------------------------------------------------------------------------------------

    def act(self, act: Act) -> Outcome:
        """Validate `act` against the held plan, write it (one transaction per engine action, under
        the core's lock, refused when the store moved since the held figures were computed), then
        recompute the customers it touched and publish the new figures. Raises ActionError."""
        with self.lock:
            held = self.held
            if held is None or not held.complete:
                raise actions.ActionError("The figures are still loading; try again once they are shown.")
            store = self.workspace.store
            expected = held.revision if self.saves_state else None
            self._parts()  # the topology before the write: a mapping may split a group
            before_companies = self._touched_before(act)
            try:
                outcome = self._write(store, act, held.plan, expected)
            except actions.StaleRevision as exc:
                self._reload()
                raise StalePlan(str(exc)) from exc
            if self.loader is not None:
                return outcome
            after = self.revision()
            companies = outcome.companies
            if companies is not None and before_companies is not None:
                companies = companies | before_companies
            commits = (
                1 if act.kind != "generate_mappings" else len(getattr(outcome.result, "applied", ()) or ())
            )
            if not commits:
                return outcome
            if companies is None or expected is None or after is None or after != expected + commits:
                self._reload()
            else:
                self._recompute(set(companies), after)
            return outcome

    def write(self, fn: Callable[[], object]) -> None:
        """A store write that is not one of the actions above (tests, tools): under the core's lock,
        refused when the store moved since the held figures, then everything recomputed."""
        with self.lock:
            held = self.held
            try:
                actions.check_revision_now(
                    self.workspace.store, held.revision if held is not None and self.saves_state else None
                )
            except actions.StaleRevision as exc:
                self._reload()
                raise StalePlan(str(exc)) from exc
            fn()
            if self.loader is None:
                self._reload()

    def _touched_before(self, act: Act) -> frozenset[str] | None:
        """The customers grouped with the action's company before it (a mapping may split a group)."""
        if act.kind in ("map_company", "unmap_company", "map_agreement") and self.topology is not None:
            return frozenset(self.topology.group([act.vendor_id]))
        return frozenset()

    def _companies_of_keys(self, plan: Plan, keys: Iterable[str]) -> frozenset[str] | None:
        """The customers of these plan keys or subscription ids (plan keys are `<subject>:…`):
        by the topology, else by a pass over the plan; None when one belongs to no known customer."""
        found = set()
        unknown = []
        known = self.topology.company_of_subject if self.topology is not None else {}
        for key in keys:
            company = known.get(subject_of(key))
            if company is None:
                unknown.append(key)
            else:
                found.add(company)
        if unknown:
            lines = (*plan.lines, *plan.ignored_lines)
            by_key = {line.key: line.company_id for line in lines}
            by_sub = {line.subscription_id: line.company_id for line in lines}
            for key in unknown:
                company = by_key.get(key) or by_sub.get(key)
                if company is None:
                    return None  # recompute everything
                found.add(company)
        return frozenset(found)

    def _scoped(self, plan: Plan, companies: frozenset[str] | None) -> Plan:
        """The held plan's lines of these customers only: what an action on their keys is validated
        against (the same lines the full plan holds for them — `parts` is cut from it —, without a
        pass over every line of the plan). The whole plan when the customers are not known."""
        parts = self.parts
        if companies is None or parts is None:
            return plan
        ordered = sorted(companies)
        return Plan.model_construct(
            as_of=plan.as_of,
            invoiced_through=plan.invoiced_through,
            lines=[line for c in ordered for line in parts.lines.get(c, ())],
            ignored_lines=[line for c in ordered for line in parts.ignored.get(c, ())],
            findings=[f for c in ordered for f in parts.findings.get(c, ())],
            totals=plan.totals,
        )

    def _write(self, store: Any, act: Act, plan: Plan, expected: int | None) -> Outcome:
        """The one store-write path of every operator action."""
        keys, user = list(act.keys), act.user
        if act.kind == "ignore":
            companies = self._companies_of_keys(plan, keys)
            rows = actions.ignore_many(
                store,
                keys,
                mode=act.mode,
                reason=act.reason,
                as_of=self._as_of(),
                user=user,
                plan=self._scoped(plan, companies),
                expected_revision=expected,
            )
            return Outcome(rows, companies)
        if act.kind == "restore":
            companies = self._companies_of_keys(plan, keys)
            actions.restore_many(store, keys, user=user, expected_revision=expected)
            return Outcome(None, companies)
        if act.kind == "set_effective_date":
            assert act.day is not None
            companies = self._companies_of_keys(plan, keys)
            moved = actions.set_effective_dates(
                store,
                keys,
                act.day,
                as_of=self._as_of(),
                user=user,
                plan=self._scoped(plan, companies),
                expected_revision=expected,
            )
            return Outcome(moved, companies)
        if act.kind == "map_company":
            actions.map_company(store, act.vendor_id, act.psa_id, user=user, expected_revision=expected)
            return Outcome(None, frozenset({act.vendor_id}))
        if act.kind == "unmap_company":
            actions.unmap_company(store, act.vendor_id, user=user, expected_revision=expected)
            return Outcome(None, frozenset({act.vendor_id}))
        if act.kind == "map_agreement":
            actions.map_agreement(
                store, act.vendor_id, act.psa_id or None, user=user, expected_revision=expected
            )
            return Outcome(None, frozenset({act.vendor_id}))
        if act.kind == "generate_mappings":
            actions.check_revision_now(store, expected)
            generated = actions.generate_mappings(store, apply=True, user=user)
            return Outcome(generated, frozenset(v for v, _ in generated.applied))
        if act.kind == "bind_product":
            actions.bind_product(
                store,
                act.vendor_id,
                act.psa_id,
                sub_product=act.sub_product,
                free=act.free,
                taxable=act.taxable,
                bill_option=act.bill_option,
                user=user,
                expected_revision=expected,
            )
            return Outcome(None, None)  # every customer with a subscription of the product
        if act.kind == "unbind_product":
            actions.unbind_product(
                store, act.vendor_id, sub_product=act.sub_product, user=user, expected_revision=expected
            )
            return Outcome(None, None)
        if act.kind == "set_invoiced_through":
            actions.set_invoiced_through(store, act.day, user=user, expected_revision=expected)
            return Outcome(None, None)
        raise actions.ActionError(f"Unknown action {act.kind!r}.")

    # --- recompute -------------------------------------------------------------------------------------

    def _reload(self) -> None:
        """Everything again (the store moved in ways the core cannot scope), published."""
        data = self.load(None)
        self._publish(data, None)

    def prepare(self) -> None:
        """Cut the held plan by customer (and read the topology): what a per-customer recompute
        starts from. Called after the figures landed, off the UI loop; an action does it otherwise."""
        with self.lock:
            if self._parts() is not None:
                self._warm()

    def _warm(self) -> None:
        """Read and reconcile one customer, and keep nothing: the first action would otherwise
        compile its ≈ 30 statements (SQLAlchemy caches a statement's SQL after its first run) and
        fill the rules' caches, ≈ 20 ms more than every later action at 50k (bench.profile_actions)."""
        from engine.reconcile import reconcile
        from engine.store.customer_scope import read_customers

        topology = self.topology
        if topology is None:
            return
        customer = min(topology.subjects_of_company, default=None)
        if customer is None:
            return
        topology.reload(self.workspace.store, {customer})  # what an action re-reads first (idempotent)
        scenario, hints = read_customers(
            self.workspace.store, topology.group({customer}) | {customer}, self.wanted()[0]
        )
        reconcile(scenario, hints)

    def _parts(self) -> PlanParts | None:
        held = self.held
        if held is None or not held.complete or self.loader is not None or not self.saves_state:
            return None
        if self.parts is None:
            from engine.store.customer_scope import Topology

            if self.topology is None:
                self.topology = Topology.read(self.workspace.store)
            self.parts = PlanParts.of(held.plan, self.topology, held.psa_lines)
        return self.parts

    def _recompute(self, companies: set[str], revision: int) -> None:
        """Recompute these customers (and those grouped with them), patch the held figures, publish."""
        from engine.reconcile import reconcile
        from engine.store.customer_scope import read_customers

        held = self.held
        parts = self._parts()
        if held is None or parts is None:
            self._reload()
            return
        topology = self.topology
        topology.reload(self.workspace.store, companies)
        group = topology.group(companies) | companies
        as_of, today = self.wanted()
        scenario, hints = read_customers(self.workspace.store, group, as_of)
        part = reconcile(scenario, hints)
        if part.as_of != held.plan.as_of or part.invoiced_through != held.plan.invoiced_through:
            self._reload()
            return
        parts.replace(group, part, topology, {line.id: line for line in scenario.psa.lines})
        plan = parts.plan(held.plan.as_of, held.plan.invoiced_through, topology.configurations)
        data = self.view.patch(
            held, scenario, part, plan, group, topology, today, parts.kinds(), parts.kind_net()
        )
        self._stamp(data, revision, (as_of, today))
        self.held = data
        self.recomputed.append(frozenset(group))
        self._publish(data, frozenset(group))
