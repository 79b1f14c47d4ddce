"""The append-only audit trail: who did what, when, from where, before and after."""

from __future__ import annotations

import getpass
import socket
from collections.abc import Collection, Mapping
from datetime import UTC, date, datetime
from functools import cache
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from engine.scrub import redact_data
from engine.store.tables import AuditEvent


@cache
def operator() -> str:
    """This process's OS user: who an action or a lock is recorded as (when no user is given).
    Looked up once: the passwd lookup behind `getpass.getuser` took ≈ 6 ms, on every action."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return "unknown"


def record(
    session: Session,
    action: str,
    subject: str,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    company: str | None = None,
    user: str | None = None,
    notes: Mapping[str, str] | None = None,
) -> AuditEvent:
    """Add an audit event to the session's transaction (it commits with the change it describes).
    Every text in it passes `engine.scrub.redact_data`: a secret a service echoed never enters the
    trail, nor a terminal control sequence. The subject's note goes with it: looked up here (one
    query), or taken from `notes` — `notes_for(session, subjects)` once for an action on many
    subjects (a bulk ignore of 500 keys: one query, not 500)."""
    event = AuditEvent(
        at=datetime.now(UTC),
        user=user or operator(),
        host=socket.gethostname(),
        action=action,
        subject=redact_data(subject),
        company=redact_data(company) if company else company,
        before=redact_data(before) if before else before,
        after=redact_data(after) if after else after,
    )
    if not action.startswith("sync.") and action not in ("note", "undo"):
        # a note on the line (its key or subscription) or the customer goes with every action on it
        note = (notes if notes is not None else notes_for(session, (subject,))).get(subject)
        if note:
            event.after = {**(event.after or {}), "note": redact_data(note)}
    session.add(event)
    return event


# --- what the trail itself holds: notes, acknowledged warnings, what can be undone ----------------


def _undone_ids(session: Session) -> set[int]:
    query = select(col(AuditEvent.before)).where(col(AuditEvent.action) == "undo")
    return {int(b["event_id"]) for (b,) in session.execute(query) if isinstance(b, dict) and "event_id" in b}


def _latest(session: Session, action: str, subject: str | None = None) -> list[AuditEvent]:
    query = select(AuditEvent).where(col(AuditEvent.action) == action)
    if subject is not None:
        query = query.where(col(AuditEvent.subject) == subject)
    rows = list(session.execute(query.order_by(col(AuditEvent.id).desc())).scalars())
    if not rows:  # the common case (no note on this subject): one indexed query
        return []
    undone = _undone_ids(session)
    return [e for e in rows if e.id not in undone]


# Subjects per `IN (…)` of `notes_for`: under SQLite's 32,766 bound parameters (its default
# SQLITE_MAX_VARIABLE_NUMBER since 3.32) and PostgreSQL's 65,535, with room for the action's.
NOTE_CHUNK = 32_000


def _subscription_of(subject: str) -> str | None:
    """A line key's subscription (`sub-1:recurring` → `sub-1`): its note goes with the line's actions."""
    return subject.split(":", 1)[0] if ":" in subject else None


def notes_for(session: Session, subjects: Collection[str]) -> dict[str, str]:
    """The note that goes with an action on each subject: the subject's current note, else (a
    line key) its subscription's — like `note_of` on each, in one query per `NOTE_CHUNK` subjects
    (and one more for the undone notes, only when some note was found). Subjects without a note
    are left out."""
    wanted = set(subjects) | {s for subject in subjects if (s := _subscription_of(subject))}
    ordered = sorted(wanted)
    found: list[tuple[int, str, dict[str, Any] | None]] = []
    for start in range(0, len(ordered), NOTE_CHUNK):
        query = select(col(AuditEvent.id), col(AuditEvent.subject), col(AuditEvent.after)).where(
            col(AuditEvent.action) == "note", col(AuditEvent.subject).in_(ordered[start : start + NOTE_CHUNK])
        )
        found += [(int(i), str(subject), after) for i, subject, after in session.execute(query)]
    if not found:  # the common case: no note on any of them
        return {}
    undone = _undone_ids(session)
    current: dict[str, str] = {}
    seen: set[str] = set()
    for event_id, subject, after in sorted(found, reverse=True):  # the newest note of each subject
        if event_id in undone or subject in seen:
            continue
        seen.add(subject)
        value = (after or {}).get("note")
        if value:
            current[subject] = str(value)
    out: dict[str, str] = {}
    for subject in subjects:
        parent = _subscription_of(subject)
        note = current.get(subject) or (current.get(parent) if parent else None)
        if note:
            out[subject] = note
    return out


def note_of(session: Session, subject: str) -> str | None:
    """The subject's current note: its newest note event not undone (None: none, or cleared)."""
    found = _latest(session, "note", subject)
    if not found:
        return None
    value = (found[0].after or {}).get("note")
    return str(value) if value else None


def current_notes(session: Session) -> dict[str, str]:
    out: dict[str, str] = {}
    for e in _latest(session, "note"):
        if e.subject not in out:
            out[e.subject] = str((e.after or {}).get("note") or "")
    return {k: v for k, v in out.items() if v}


def current_acknowledgements(session: Session) -> dict[str, AuditEvent]:
    """Acknowledged warnings by finding key (the newest acknowledgement not undone)."""
    out: dict[str, AuditEvent] = {}
    for e in _latest(session, "acknowledge"):
        out.setdefault(e.subject, e)
    return out


def last_sync_id(session: Session) -> int:
    query = select(col(AuditEvent.id)).where(col(AuditEvent.action).startswith("sync."))
    value = session.execute(query.order_by(col(AuditEvent.id).desc()).limit(1)).scalar()
    return int(value) if value is not None else 0


def undoable(session: Session, actions: tuple[str, ...]) -> list[AuditEvent]:
    """Operator actions after the last sync event that no "undo" event has withdrawn, newest first."""
    since = last_sync_id(session)
    undone = _undone_ids(session)
    query = (
        select(AuditEvent)
        .where(col(AuditEvent.id) > since, col(AuditEvent.action).in_(actions))
        .order_by(col(AuditEvent.id).desc())
    )
    return [e for e in session.execute(query).scalars() if e.id not in undone]


def previous_state(session: Session, event: AuditEvent, actions: tuple[str, ...]) -> AuditEvent | None:
    """The newest event before `event` on the same subject among `actions`, not undone; None when
    a sync of that subject came in between (a sync consumes what the operator set on the line)."""
    undone = _undone_ids(session)
    query = (
        select(AuditEvent)
        .where(
            col(AuditEvent.id) < (event.id or 0),
            col(AuditEvent.subject) == event.subject,
        )
        .order_by(col(AuditEvent.id).desc())
    )
    earlier: list[AuditEvent] = list(session.execute(query).scalars())
    for e in earlier:
        if e.action.startswith("sync."):
            return None
        if e.action in actions and e.id not in undone:
            return e
    return None


def events(
    session: Session, *, since: date | None = None, company: str | None = None, limit: int | None = None
) -> list[AuditEvent]:
    query = select(AuditEvent).order_by(col(AuditEvent.id))
    if since is not None:
        query = query.where(col(AuditEvent.at) >= datetime.combine(since, datetime.min.time(), tzinfo=UTC))
    if company is not None:
        query = query.where(col(AuditEvent.company).ilike(f"%{company}%"))
    if limit is not None:
        query = query.limit(limit)
    return list(session.execute(query).scalars())
