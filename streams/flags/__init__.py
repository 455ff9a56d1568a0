"""Failures in data sharing between agencies: flags that open, resolve or are withdrawn.

A flag lives in the ``flags`` store of the partition that owns its subject, so it
is fenced and replayed exactly like the counters, and is identified by type and
subject so the same failure is never flagged twice. Rules run inside
:class:`streams.processor.Processor`; every SLA is measured on event time (the
clock of the feed whose data a flag waits for, ``streams.clocks``), so a replay of the same history gives the same flags. The
one wall-clock flag, ``AGENCY_SILENT``, lives in :mod:`streams.silence`.

See ``docs/flags.md`` for each type, its SLA and its lifecycle.
"""

from __future__ import annotations

from collections.abc import Mapping

from streams.flags.citizens import CitizenDataRule
from streams.flags.dossiers import ChainStalledRule, ProcedureOverdueRule
from streams.flags.records import flag_id, make_flag, open_flag, reconcile, resolve_flag
from streams.flags.rollups import SyncRollup
from streams.flags.rules import BaseRule, Event, FlagRule, SourcePosition
from streams.flags.tallies import (
    ContractViolationRule,
    DuplicateEventRule,
    LateEventRule,
    Tallies,
    TallyClock,
)
from streams.sla import resolve_sla, sla_ms

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
FLAG_STATUSES = ("OPEN", "RESOLVED", "WITHDRAWN")


def default_rules(sla: Mapping[str, float] | None = None) -> list[FlagRule]:
    """Every event-time rule, with SLAs (hours) from ``sla`` over the defaults."""
    hours = resolve_sla(sla)
    tallies = Tallies()
    rollup = SyncRollup(sla_ms(hours, "INSURANCE_SYNC"))
    return [
        CitizenDataRule(hours, rollup),
        rollup,
        ChainStalledRule(hours),
        ProcedureOverdueRule(),
        DuplicateEventRule(tallies),
        LateEventRule(tallies, hours),
        ContractViolationRule(tallies),
        TallyClock(tallies),
    ]


__all__ = [
    "FLAG_STATUSES",
    "FLAG_TYPES",
    "BaseRule",
    "ChainStalledRule",
    "CitizenDataRule",
    "ContractViolationRule",
    "DuplicateEventRule",
    "Event",
    "FlagRule",
    "LateEventRule",
    "ProcedureOverdueRule",
    "SourcePosition",
    "SyncRollup",
    "Tallies",
    "TallyClock",
    "default_rules",
    "flag_id",
    "make_flag",
    "open_flag",
    "reconcile",
    "resolve_flag",
]
