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

from schemas.vocabulary import FLAG_STATUSES
from streams.flags.citizens import CitizenDataRule
from streams.flags.dossiers import ChainStalledRule, ProcedureOverdueRule
from streams.flags.records import flag_id, make_flag, open_flag, reconcile, resolve_flag
from streams.flags.rollups import SyncRollup
from streams.flags.tallies import (
    ContractViolationRule,
    DuplicateEventRule,
    LateEventRule,
    Tallies,
    TallyClock,
)
from streams.reaction import BaseReaction, Event, Reaction
from streams.silence import SilenceMonitor
from streams.sla import resolve_sla, sla_ms
from streams.state import SourcePosition


def default_rules(sla: Mapping[str, float] | None = None) -> list[Reaction]:
    """Every event-time rule, with SLAs (hours) from ``sla`` over the defaults: the registry.

    A new flag rule is its module and one line here (and its SLA in ``streams.sla``,
    if it has a new one): its ``flag_types`` join :data:`FLAG_TYPES`, and the
    ``Flag`` schema's type is an open value (docs/contracts.md).
    """
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


#: Every flag type the hub raises, in the rules' order: each registered rule's
#: ``flag_types``, then the wall-clock ``AGENCY_SILENT`` (``streams.silence``).
FLAG_TYPES: tuple[str, ...] = tuple(dict.fromkeys(
    [*(flag_type for rule in default_rules() for flag_type in rule.flag_types), *SilenceMonitor.flag_types]))


__all__ = [
    "FLAG_STATUSES",
    "FLAG_TYPES",
    "BaseReaction",
    "ChainStalledRule",
    "CitizenDataRule",
    "ContractViolationRule",
    "DuplicateEventRule",
    "Event",
    "Reaction",
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
