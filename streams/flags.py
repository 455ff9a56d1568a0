"""Failures in data sharing between agencies: flags that open and resolve.

A flag lives in the ``flags`` store of the partition that owns its subject, so it
is fenced and replayed exactly like the counters. Flags are identified by type and
subject, so the same failure is never flagged twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from schemas.errors import ContractError
from streams.state import Change

Event = dict[str, Any]
FLAG_TYPES = (
    "SYNC_FAILED",
    "SYNC_MISSING",
    "INSURANCE_NOT_SHARED",
    "CHAIN_STALLED",
    "PROCEDURE_OVERDUE",
    "CONTRACT_VIOLATION",
    "DUPLICATE_EVENT",
    "LATE_EVENT",
    "AGENCY_SILENT",
)


@dataclass(frozen=True)
class SourcePosition:
    topic: str
    partition: int
    offset: int
    timestamp: int


def flag_id(flag_type: str, subject: str) -> str:
    return f"{flag_type}:{subject}"


def open_flag(
    change: Change,
    flag_type: str,
    *,
    agency: str,
    ward: str,
    subject: str,
    opened_at: int,
    detail: str = "",
    evidence: list[str] | None = None,
) -> dict[str, Any] | None:
    """Open a flag unless one of that type is already open or known for the subject."""
    fid = flag_id(flag_type, subject)
    if change.get("flags", fid) is not None:
        return None
    flag = {
        "flag_id": fid,
        "type": flag_type,
        "status": "OPEN",
        "agency": agency,
        "ward_code": ward,
        "subject": subject,
        "opened_at": opened_at,
        "resolved_at": None,
        "detail": detail,
        "evidence": list(evidence or []),
    }
    change.set("flags", fid, flag)
    change.flag_changes.append(flag)
    return flag


def resolve_flag(change: Change, flag_type: str, subject: str, resolved_at: int, evidence: list[str] | None = None) -> dict[str, Any] | None:
    fid = flag_id(flag_type, subject)
    flag = change.get("flags", fid)
    if flag is None or flag["status"] != "OPEN":
        return None
    flag = dict(flag, status="RESOLVED", resolved_at=resolved_at, evidence=flag["evidence"] + list(evidence or []))
    change.set("flags", fid, flag)
    change.flag_changes.append(flag)
    return flag


class FlagRule(Protocol):
    """One kind of failure detection, called by the processor for each message."""

    def on_event(self, event: Event, change: Change) -> None: ...

    def on_duplicate(self, event: Event, change: Change) -> None: ...

    def on_dead_letter(self, error: ContractError, where: SourcePosition, change: Change) -> None: ...

    def on_watermark(self, watermark: int, change: Change) -> None: ...


class BaseRule:
    def on_event(self, event: Event, change: Change) -> None:
        return None

    def on_duplicate(self, event: Event, change: Change) -> None:
        return None

    def on_dead_letter(self, error: ContractError, where: SourcePosition, change: Change) -> None:
        return None

    def on_watermark(self, watermark: int, change: Change) -> None:
        return None


class DuplicateEventRule(BaseRule):
    """An event id published twice: the agency's retry logic or export is replaying."""

    def on_duplicate(self, event: Event, change: Change) -> None:
        open_flag(
            change,
            "DUPLICATE_EVENT",
            agency=event["source"],
            ward=event.get("ward_code", ""),
            subject=event["event_id"],
            opened_at=event["occurred_at"],
            detail=f"{event['event_type']} {event['event_id']} was published more than once",
            evidence=[event["event_id"]],
        )


class ContractViolationRule(BaseRule):
    """A message that could not be decoded or broke its contract (dead-lettered)."""

    def on_dead_letter(self, error: ContractError, where: SourcePosition, change: Change) -> None:
        open_flag(
            change,
            "CONTRACT_VIOLATION",
            agency="",
            ward="",
            subject=f"{where.topic}/{where.partition}/{where.offset}",
            opened_at=where.timestamp,
            detail=str(error),
        )


def default_rules(sla: dict[str, float] | None = None) -> list[FlagRule]:
    return [DuplicateEventRule(), ContractViolationRule()]
