"""One Kafka message in, one atomic state change out: the worker's pure core.

The Faust agent is a thin shell around :class:`Processor`, so the counting and
flagging logic can be tested, profiled and benchmarked without a broker.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from schemas.codec import EventCodec
from schemas.errors import ContractError
from schemas.signing import Headers, Keyring, Proof
from schemas.validation import validate
from streams import audit
from streams.clock import local_day
from streams.clocks import advance_clocks
from streams.counting import count_event
from streams.flags import BaseRule, FlagRule, SourcePosition, default_rules
from streams.flags.tallies import agency_of_topic
from streams.redaction import DeadLetterRedactor
from streams.scorecard import DEADLETTER_PREFIX, delay_counter
from streams.state import Change, Delta, PartitionState

Event = dict[str, Any]

#: Meta-store key prefix of an agency's liveness record ({last_seen_ms, events}).
AGENCY_KEY = "agency:"


def agency_liveness(state: PartitionState) -> dict[str, dict[str, Any]]:
    """Each agency's liveness record in a partition, by agency."""
    return {k[len(AGENCY_KEY):]: v for k, v in state.stores["meta"].items() if k.startswith(AGENCY_KEY)}


@dataclass
class DeadLetter:
    """A refused message (or one refused item of a batch), with why and where from."""

    value: bytes
    error: ContractError
    where: SourcePosition
    batch_index: int | None = None
    #: ID-shaped values replaced in the value and reason (see ``streams.redaction``).
    redacted: int = 0
    #: Who signed the message, when the signature was good (the refusal is about its content).
    proof: Proof | None = None

    def headers(self) -> list[tuple[str, bytes]]:
        headers = [
            ("lienthong.reason", str(self.error).encode()),
            ("lienthong.field", self.error.field.encode()),
            ("lienthong.source.topic", self.where.topic.encode()),
            ("lienthong.source.partition", str(self.where.partition).encode()),
            ("lienthong.source.offset", str(self.where.offset).encode()),
        ]
        if self.batch_index is not None:
            headers.append(("lienthong.source.batch_index", str(self.batch_index).encode()))
        headers.append(("lienthong.redacted", str(self.redacted).encode()))
        if self.proof is not None:
            headers.append(("lienthong.source.agency", self.proof.agency.encode()))
            headers.append(("lienthong.source.key_id", self.proof.key_id.encode()))
        return headers

    def record(self) -> dict[str, Any]:
        """As kept in the message's delta (``Delta.dead``), to be sent again on a replay."""
        return {"v": base64.b64encode(self.value).decode(), "h": [[k, v.decode()] for k, v in self.headers()]}


def dead_letter_of_record(record: dict[str, Any]) -> tuple[bytes, list[tuple[str, bytes]]]:
    """Value and headers of a dead letter kept in a delta (:meth:`DeadLetter.record`)."""
    return base64.b64decode(record["v"]), [(k, v.encode()) for k, v in record["h"]]


@dataclass
class Outcome:
    delta: Delta | None = None
    skipped: bool = False
    dead_letters: list[DeadLetter] = field(default_factory=list)
    flag_changes: list[dict[str, Any]] = field(default_factory=list)
    accepted: Counter[str] = field(default_factory=Counter)
    duplicates: Counter[str] = field(default_factory=Counter)
    #: The audit record of an accepted message (``streams.audit``), for ``lienthong.audit``.
    audit: dict[str, Any] | None = None


class Processor:
    def __init__(
        self,
        codec: EventCodec | None = None,
        rules: list[FlagRule] | None = None,
        *,
        keyring: Keyring | None = None,
        redactor: DeadLetterRedactor | None = None,
    ) -> None:
        self.codec = codec or EventCodec()
        self.rules = rules if rules is not None else default_rules()
        #: Verifies each message's signature before anything counts; ``None``: verification off.
        self.keyring = keyring
        #: Cleans every dead letter of ID numbers (masking only, unless given the pseudonym key).
        self.redactor = redactor or DeadLetterRedactor(self.codec)
        self.states: dict[int, PartitionState] = {}
        #: event type → the ``on_event`` hooks that react to it (see ``event_hooks``)
        self._hooks: dict[str, list[Callable[[Event, Change], None]]] = {}
        self._on_clock: list[Callable[[str, int, Change], None]] | None = None

    def state(self, partition: int) -> PartitionState:
        if partition not in self.states:
            self.states[partition] = PartitionState(partition)
        return self.states[partition]

    def adopt(self, state: PartitionState) -> None:
        self.states[state.partition] = state

    def drop(self, partition: int) -> None:
        self.states.pop(partition, None)

    def event_hooks(self, event_type: str) -> list[Callable[[Event, Change], None]]:
        """The rules' ``on_event`` hooks for one event type, worked out once per type.

        Several calls per event are saved: a hook a rule leaves as BaseRule's no-op
        is skipped, and so is one whose ``event_types`` leave this type out.
        """
        hooks = self._hooks.get(event_type)
        if hooks is None:
            hooks = self._hooks[event_type] = [
                rule.on_event for rule in self.rules
                if getattr(type(rule), "on_event", None) is not BaseRule.on_event
                and (getattr(rule, "event_types", None) is None or event_type in rule.event_types)  # type: ignore[attr-defined]
            ]
        return hooks

    def _clock_hooks(self) -> list[Callable[[str, int, Change], None]]:
        """The rules' ``on_clock`` hooks (those that are not BaseRule's no-op)."""
        hooks = self._on_clock
        if hooks is None:
            hooks = self._on_clock = [
                rule.on_clock for rule in self.rules
                if getattr(type(rule), "on_clock", None) is not BaseRule.on_clock
            ]
        return hooks

    def decode(
        self, value: bytes, where: SourcePosition, agency: str | None = None
    ) -> tuple[list[Event], list[DeadLetter]]:
        """Valid events of a message; refused ones (or the whole message) as dead letters.

        With ``agency`` (the proven signer), an event whose ``source`` is another
        agency is refused too: a key proves only its own agency's events.
        """
        try:
            sv, record = self.codec.decode_record(value)
        except ContractError as exc:
            return [], [DeadLetter(value, exc, where)]
        if sv.name != "EventBatch":
            try:
                return [_signed_by(validate(self.codec.event_of(sv, record)), agency)], []
            except ContractError as exc:
                return [], [DeadLetter(value, exc, where)]
        events, dead = [], []
        decode_item = self.codec.decode_item
        for index, item in enumerate(record["events"]):
            try:
                events.append(_signed_by(validate(decode_item(item)), agency))
            except ContractError as exc:
                dead.append(DeadLetter(item, exc, where, batch_index=index))
        return events, dead

    def verified_decode(
        self, value: bytes, where: SourcePosition, headers: Headers | None
    ) -> tuple[list[Event], list[DeadLetter], Proof | None]:
        """:meth:`decode` after the signature check; every dead letter cleaned of ID numbers.

        A message whose signature is missing, unknown or wrong is refused whole:
        nothing in it is proven. The proof is ``None`` when verification is off.
        """
        proof = None
        if self.keyring is not None:
            try:
                proof = self.keyring.verify(value, headers)
            except ContractError as exc:
                return [], [self.redact(DeadLetter(value, exc, where))], None
        events, dead = self.decode(value, where, proof.agency if proof else None)
        for letter in dead:
            letter.proof = proof
        return events, [self.redact(letter) for letter in dead], proof

    def redact(self, letter: DeadLetter) -> DeadLetter:
        value, found = self.redactor.value(letter.value)
        error = self.redactor.error(letter.error)
        letter.redacted = found + (error is not letter.error)
        letter.value, letter.error = value, error
        return letter

    def process(
        self,
        topic: str,
        partition: int,
        offset: int,
        value: bytes,
        timestamp: int,
        now_ms: int | None = None,
        idle: Collection[str] | None = None,
        headers: Headers | None = None,
    ) -> Outcome:
        """Apply one message to its partition's state, unless it was applied before.

        ``timestamp`` is the Kafka message time (used where an event has none, e.g.
        a dead letter); ``now_ms`` the wall clock, only for agency liveness.
        ``idle``: topics of this partition caught up and quiet, whose clocks may
        follow the others (``None``: every topic, nothing unread anywhere, as in a
        live run); see :mod:`streams.clocks`. ``headers``: the message's Kafka
        headers (its signature).
        """
        state = self.state(partition)
        if state.is_applied(topic, offset):
            return Outcome(skipped=True)
        where = SourcePosition(topic, partition, offset, timestamp)
        change = state.begin(topic, offset)
        outcome = Outcome()
        events, outcome.dead_letters, proof = self.verified_decode(value, where, headers)
        if events or proof is not None:
            outcome.audit = audit.append(change, where, value, proof, events)
        for dead in outcome.dead_letters:
            change.count("events_dead_lettered", "", local_day(timestamp))
            # the scorecard's dead-letter share, by the agency of the topic
            change.count(DEADLETTER_PREFIX + (agency_of_topic(topic) or "UNKNOWN"), "", local_day(timestamp))
            for rule in self.rules:
                rule.on_dead_letter(dead.error, where, change)
        watermark = state.watermark
        newest = 0  # newest event time of this message (one topic: one feed's clock)
        hooks_for = self.event_hooks
        first_sighting = change.first_sighting
        accepted: dict[str, int] = {}
        for event in events:
            if not first_sighting(event["event_id"]):
                change.count("events_duplicate", event["ward_code"], local_day(event["occurred_at"]))
                outcome.duplicates[event["source"]] += 1
                for rule in self.rules:
                    rule.on_duplicate(event, change)
                continue
            source = event["source"]
            accepted[source] = accepted.get(source, 0) + 1
            count_event(event, change)
            for hook in hooks_for(event["event_type"]):
                hook(event, change)
            # heartbeats carry wall-clock time; only agency events move event time
            if event["event_type"] != "ConnectorHeartbeat":
                at = event["occurred_at"]
                # the scorecard's sharing delay: event time → hub time (the message's Kafka time)
                change.count(delay_counter(source, at, timestamp), event["ward_code"], local_day(at))
                if at > newest:
                    newest = at
        watermark = max(watermark, newest)
        outcome.accepted.update(accepted)
        for source, n in outcome.accepted.items():
            # wall clock, on purpose: AGENCY_SILENT is about the agency being live now
            seen = change.get("meta", AGENCY_KEY + source, {"events": 0})
            change.set(
                "meta",
                AGENCY_KEY + source,
                {"last_seen_ms": now_ms if now_ms is not None else timestamp, "events": seen["events"] + n},
            )
        for clock_topic, clock in advance_clocks(change, topic, newest, idle):
            for on_clock in self._clock_hooks():
                on_clock(clock_topic, clock, change)
        if watermark > state.watermark:
            change.set("meta", "watermark", watermark)
            for rule in self.rules:
                rule.on_watermark(watermark, change)
        outcome.flag_changes = change.flag_changes
        outcome.delta = change.commit()
        outcome.delta.dead = [dead.record() for dead in outcome.dead_letters]
        return outcome


def _signed_by(event: Event, agency: str | None) -> Event:
    if agency is not None and event["source"] != agency:
        raise ContractError("source", f"the message is signed by {agency}, not {event['source']}", event["event_type"])
    return event
