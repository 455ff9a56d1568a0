"""One table of contracts: one declaration per event type, everything else derived.

An event type is its Avro schema (``schemas/avro/<Name>/v<N>.avsc``, the fields)
plus one :class:`EventContract` below (how the hub treats it): the topic it travels
on, the agency that may publish it, the envelope fields its Kafka key is taken from,
whether its ``occurred_at`` moves event time (a heartbeat's is wall-clock time),
whether it concerns a citizen in a ward, whether it needs a dossier id, whether
it is only a liveness signal (not a counted event), and the counters it adds 1 to
(``streams/counting.py``; checked against it by ``tests/unit/test_contracts.py``).
``TOPIC_OF_EVENT``, ``SOURCE_OF_EVENT`` and the other per-type lookups are views of
this table, so adding a counted event type is its ``.avsc`` and one line here (and
the simulator's generator).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from schemas.topics import (
    CIVIL_STATUS,
    HEALTH,
    HEARTBEATS,
    IDENTITY,
    INSURANCE,
    PROCEDURES,
    RESIDENCE,
    WELFARE,
)
from schemas.vocabulary import AGENCIES

#: The liveness event every connector sends; it concerns no citizen and carries wall-clock time.
HEARTBEAT = "ConnectorHeartbeat"

#: Envelope fields the Kafka key is taken from, first non-empty wins: a dossier's steps
#: and a citizen's events share a partition number across topics (co-partitioning).
DOSSIER_OR_CITIZEN = ("correlation_id", "citizen_ref", "connector", "source")


@dataclass(frozen=True)
class Count:
    """One counter an event type adds to (per ward and local day of event time).

    ``metric`` alone adds 1 for every event. ``label`` names a field whose value
    ends the metric's name (``residence_registrations:PERMANENT``); ``when`` /
    ``unless`` (field, value) add only for events whose field has / has not that
    value; ``amount`` names a field added instead of 1 (a sum, e.g. money paid).
    """

    metric: str
    label: str | None = None
    when: tuple[str, str] | None = None
    unless: tuple[str, str] | None = None
    amount: str | None = None

    def of(self, event: dict[str, Any]) -> tuple[str, int] | None:
        """(metric name, amount) this event adds, or None when the counter is not for it."""
        if self.when is not None and event.get(self.when[0]) != self.when[1]:
            return None
        if self.unless is not None and event.get(self.unless[0]) == self.unless[1]:
            return None
        name = self.metric if self.label is None else f"{self.metric}:{event[self.label]}"
        return name, 1 if self.amount is None else int(event[self.amount])


@dataclass(frozen=True)
class EventContract:
    """How the hub treats one event type, beyond the fields its Avro schema declares."""

    event_type: str
    topic: str
    #: The agency that may publish it; None: any agency (heartbeats).
    agency: str | None
    #: Counters one event adds to, besides ``events_total``, ``events:<type>`` and
    #: ``agency:<source>`` (a liveness signal adds only these).
    counters: tuple[Count, ...] = ()
    key_fields: tuple[str, ...] = DOSSIER_OR_CITIZEN
    #: Its ``occurred_at`` is event time (watermarks, lateness, sharing delay).
    moves_event_time: bool = True
    #: It has a ward and a citizen pseudonym (a heartbeat has neither: both empty).
    about_a_citizen: bool = True
    #: It starts or steps a dossier and cannot be joined without ``correlation_id``.
    needs_correlation: bool = False
    #: It is a liveness signal, not a counted event: it adds only its own counters
    #: (no ``events_total``, ``events:<type>`` or ``agency:<source>``, no ward, no dossier).
    liveness_signal: bool = False

    def __post_init__(self) -> None:
        if self.agency is not None and self.agency not in AGENCIES:
            raise ValueError(f"{self.event_type}: unknown agency {self.agency!r}")


CONTRACTS: tuple[EventContract, ...] = (
    EventContract("IdCardIssued", IDENTITY, "POLICE", (Count("id_cards_issued"),)),
    EventContract("EIdActivated", IDENTITY, "POLICE",
                  (Count("eid_activated"), Count("eid_level2_activated", when=("level", "LEVEL_2")))),
    EventContract("ResidenceRegistered", RESIDENCE, "POLICE",
                  (Count("residence_registrations", label="kind"),
                   Count("residence_online", label="kind", when=("channel", "ONLINE")))),
    EventContract("ResidenceDeregistered", RESIDENCE, "POLICE",
                  (Count("residence_deregistrations", label="reason"),)),
    EventContract("HealthInsuranceSynced", INSURANCE, "SOCIAL_INSURANCE",
                  (Count("insurance_synced", when=("outcome", "SYNCED")),
                   Count("insurance_sync_failed", unless=("outcome", "SYNCED")))),
    EventContract("HealthInsuranceCardIssued", INSURANCE, "SOCIAL_INSURANCE", (Count("insurance_cards_issued"),)),
    EventContract("MedicalCheckIn", HEALTH, "HEALTH",
                  (Count("checkins_by_id_card"),
                   Count("checkins_insurance_not_found", when=("insurance_lookup", "NOT_FOUND")))),
    EventContract("BirthRegistered", CIVIL_STATUS, "JUSTICE", needs_correlation=True),
    EventContract("DeathRegistered", CIVIL_STATUS, "JUSTICE", needs_correlation=True),
    EventContract("JudicialRecordIssued", CIVIL_STATUS, "JUSTICE", (Count("judicial_records", label="channel"),)),
    EventContract("ProcedureSubmitted", PROCEDURES, "PORTAL",
                  (Count("procedures_submitted"), Count("procedures_full_online", when=("online_level", "FULL"))),
                  needs_correlation=True),
    EventContract("ProcedureCompleted", PROCEDURES, "PORTAL", (Count("procedures_completed"),),
                  needs_correlation=True),
    EventContract("WelfarePaid", WELFARE, "LABOUR",
                  (Count("welfare_payments"), Count("welfare_cashless", when=("channel", "BANK_ACCOUNT")),
                   Count("welfare_amount_vnd", amount="amount_vnd"))),
    EventContract("FuneralAllowanceGranted", WELFARE, "LABOUR", (Count("funeral_allowances"),)),
    EventContract(HEARTBEAT, HEARTBEATS, None, (Count("heartbeats"),), moves_event_time=False,
                  about_a_citizen=False, liveness_signal=True),
)

#: Event type → its contract.
CONTRACT_OF: dict[str, EventContract] = {c.event_type: c for c in CONTRACTS}
#: Event type → its topic.
TOPIC_OF_EVENT: dict[str, str] = {c.event_type: c.topic for c in CONTRACTS}
#: Agencies that may publish each event type (None: any agency).
SOURCE_OF_EVENT: dict[str, str | None] = {c.event_type: c.agency for c in CONTRACTS}
#: Event types that cannot be joined without a dossier id.
NEEDS_CORRELATION: frozenset[str] = frozenset(c.event_type for c in CONTRACTS if c.needs_correlation)
#: Event types whose ``occurred_at`` is wall-clock time, not event time.
WALL_CLOCK_EVENTS: frozenset[str] = frozenset(c.event_type for c in CONTRACTS if not c.moves_event_time)
#: Event types with no citizen and no ward (their ``citizen_ref`` and ``ward_code`` are empty).
NOT_ABOUT_A_CITIZEN: frozenset[str] = frozenset(c.event_type for c in CONTRACTS if not c.about_a_citizen)
#: Event types that only say a connector is alive: not counted as events.
LIVENESS_SIGNALS: frozenset[str] = frozenset(c.event_type for c in CONTRACTS if c.liveness_signal)


def _only_agency(topic: str) -> str:
    sources = {c.agency for c in CONTRACTS if c.topic == topic}
    only = next(iter(sources)) if len(sources) == 1 else None
    return only or ""


#: Topic → the one agency that publishes to it, or "" when several may (heartbeats).
AGENCY_OF_TOPIC: dict[str, str] = {c.topic: _only_agency(c.topic) for c in CONTRACTS}


def agency_of_topic(topic: str) -> str:
    """The one agency that publishes to a topic, or "" when several may (or the topic is unknown)."""
    return AGENCY_OF_TOPIC.get(topic, "")


def events_of_agency(agency: str) -> list[str]:
    return [t for t, src in SOURCE_OF_EVENT.items() if src in (agency, None)]


def partition_key(event: dict[str, object]) -> bytes:
    """The Kafka key of an event: its dossier when it has one, else its citizen.

    Every topic has the same partition count, so one dossier's steps (birth →
    residence → insurance card) and one citizen's events (ID card → insurance
    sync → hospital check-in) share a partition number across topics, and one
    worker sees all of them, in order. A heartbeat, which has neither, is keyed
    by its connector.
    """
    contract = CONTRACT_OF.get(str(event.get("event_type")))
    for field in contract.key_fields if contract is not None else DOSSIER_OR_CITIZEN:
        value = event.get(field)
        if value:
            return str(value).encode()
    return b""
