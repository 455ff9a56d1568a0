"""Which topic each event family travels on: the contract agencies publish against."""

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

TOPIC_OF_EVENT: dict[str, str] = {
    "IdCardIssued": IDENTITY,
    "EIdActivated": IDENTITY,
    "ResidenceRegistered": RESIDENCE,
    "ResidenceDeregistered": RESIDENCE,
    "HealthInsuranceSynced": INSURANCE,
    "HealthInsuranceCardIssued": INSURANCE,
    "MedicalCheckIn": HEALTH,
    "BirthRegistered": CIVIL_STATUS,
    "DeathRegistered": CIVIL_STATUS,
    "JudicialRecordIssued": CIVIL_STATUS,
    "ProcedureSubmitted": PROCEDURES,
    "ProcedureCompleted": PROCEDURES,
    "WelfarePaid": WELFARE,
    "FuneralAllowanceGranted": WELFARE,
    "ConnectorHeartbeat": HEARTBEATS,
}

#: Agencies that may publish each event type (ConnectorHeartbeat: any agency).
SOURCE_OF_EVENT: dict[str, str | None] = {
    "IdCardIssued": "POLICE",
    "EIdActivated": "POLICE",
    "ResidenceRegistered": "POLICE",
    "ResidenceDeregistered": "POLICE",
    "HealthInsuranceSynced": "SOCIAL_INSURANCE",
    "HealthInsuranceCardIssued": "SOCIAL_INSURANCE",
    "MedicalCheckIn": "HEALTH",
    "BirthRegistered": "JUSTICE",
    "DeathRegistered": "JUSTICE",
    "JudicialRecordIssued": "JUSTICE",
    "ProcedureSubmitted": "PORTAL",
    "ProcedureCompleted": "PORTAL",
    "WelfarePaid": "LABOUR",
    "FuneralAllowanceGranted": "LABOUR",
    "ConnectorHeartbeat": None,
}

AGENCIES = ("POLICE", "SOCIAL_INSURANCE", "HEALTH", "JUSTICE", "PORTAL", "LABOUR")

#: Topics a worker consumes; all share one partition count (co-partitioned).
EVENT_TOPICS: tuple[str, ...] = tuple(dict.fromkeys(TOPIC_OF_EVENT.values()))

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


def events_of_agency(agency: str) -> list[str]:
    return [t for t, src in SOURCE_OF_EVENT.items() if src in (agency, None)]


def partition_key(event: dict[str, object]) -> bytes:
    """The Kafka key of an event: its dossier when it has one, else its citizen.

    Every topic has the same partition count, so one dossier's steps (birth →
    residence → insurance card) and one citizen's events (ID card → insurance
    sync → hospital check-in) share a partition number across topics, and one
    worker sees all of them, in order.
    """
    if event.get("correlation_id"):
        return str(event["correlation_id"]).encode()
    if event.get("citizen_ref"):
        return str(event["citizen_ref"]).encode()
    return str(event.get("connector") or event.get("source") or "").encode()
