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

#: Topic configs beyond the broker's defaults: the audit record is kept forever, never compacted.
TOPIC_CONFIGS: dict[str, dict[str, str]] = {
    AUDIT: {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"},
}

