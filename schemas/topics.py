"""The hub's topic names and their settings: only names, nothing that talks to a broker.

Which event type travels on which topic is declared in :mod:`schemas.contracts`;
creating and checking topics on a broker is :mod:`hubbase.topic_admin`.
"""

from __future__ import annotations

IDENTITY = "lienthong.identity"
RESIDENCE = "lienthong.residence"
INSURANCE = "lienthong.insurance"
HEALTH = "lienthong.health"
CIVIL_STATUS = "lienthong.civil-status"
PROCEDURES = "lienthong.procedures"
WELFARE = "lienthong.welfare"
HEARTBEATS = "lienthong.heartbeats"
DEADLETTER = "lienthong.deadletter"
ALERTS = "lienthong.alerts"
AGGREGATES = "lienthong.aggregates"
#: Hash-chained record of every accepted message (``streams.audit``); never compacted.
AUDIT = "lienthong.audit"

#: Topics a worker consumes; all share one partition count (co-partitioned).
EVENT_TOPICS: tuple[str, ...] = (IDENTITY, RESIDENCE, INSURANCE, HEALTH, CIVIL_STATUS, PROCEDURES, WELFARE, HEARTBEATS)

ALL_TOPICS: tuple[str, ...] = EVENT_TOPICS + (DEADLETTER, ALERTS, AGGREGATES, AUDIT)

#: Internal, worker to worker (not for agencies or dashboards): each partition's
#: share of a ``SYNC_MISSING`` roll-up, keyed ``ward|day|partition`` and sent to
#: the partition of ``ward|day``, where the merge stage makes one flag of them
#: (``streams.rollup_merge``). Compacted: a newer share of the same partition replaces the older.
ROLLUP_PARTIALS = "lienthong.rollup-partials"
INTERNAL_TOPICS: tuple[str, ...] = (ROLLUP_PARTIALS,)

#: Every topic the hub creates, all with one partition count (co-partitioning).
HUB_TOPICS: tuple[str, ...] = ALL_TOPICS + INTERNAL_TOPICS

#: Topic configs beyond the broker's defaults: the audit record is kept forever, never compacted.
TOPIC_CONFIGS: dict[str, dict[str, str]] = {
    AUDIT: {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"},
    ROLLUP_PARTIALS: {"cleanup.policy": "compact"},
}

