"""Writing the plan into the PSA: a journal committed before every write, an executor that resolves
every uncertain write by lookup (never by a blind re-send), and recovery after a crash."""

from engine.sync.executor import LineOutcome, Outcome, SyncExecutor, SyncReport, dry_run_requests
from engine.sync.journal import Journal, SyncJournalRow

__all__ = [
    "Journal",
    "LineOutcome",
    "Outcome",
    "SyncExecutor",
    "SyncJournalRow",
    "SyncReport",
    "dry_run_requests",
]
