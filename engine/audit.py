"""The append-only audit trail: who did what, when, from where, before and after."""

from __future__ import annotations

import getpass
import socket
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from engine.scrub import redact_data
from engine.store.tables import AuditEvent


def operator() -> str:
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
) -> AuditEvent:
    """Add an audit event to the session's transaction (it commits with the change it describes).
    Every text in it passes `engine.scrub.redact_data`: a secret a service echoed never enters the
    trail, nor a terminal control sequence."""
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
    session.add(event)
    return event


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
