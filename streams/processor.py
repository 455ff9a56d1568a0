"""One Kafka message in, one atomic state change out: the worker's pure core.

The Faust agent is a thin shell around :class:`Processor`, so the counting and
flagging logic can be tested, profiled and benchmarked without a broker. The
processor itself only verifies, decodes and deduplicates each message, moves the
partition's clocks and keeps the change atomic and fenced; what an event means is
left to its reactions (``streams.reaction``): the city's counters
(``streams.counting``), agency liveness (``streams.liveness``), the scorecard's
counters (``streams.scorecard``), then every flag rule (``streams.flags``).
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from schemas.codec import EventCodec
from schemas.contracts import WALL_CLOCK_EVENTS
from schemas.errors import ContractError
from schemas.signing import SIGNING_HEADERS, Headers, Keyring, Proof
from schemas.validation import validate
from streams import audit
from streams.clock import local_day
from streams.clocks import CLOCKED_TOPICS, advance_clocks, clock_of
from streams.counting import Counting
from streams.flags import default_rules
from streams.liveness import AgencyLiveness
from streams.reaction import Reaction, hooks_of
from streams.redaction import DeadLetterRedactor
from streams.scorecard import ScorecardCounting
from streams.state import DEFAULT_DEADLINE_STEP, Change, Delta, PartitionState, SourcePosition
from streams.stores import CORE_STORES, META, StoreName

Event = dict[str, Any]

#: ``PartitionState.indexes`` key: the last message left due deadlines unreconciled
#: (absent on a fresh or restored state: its first message looks).
DEADLINES_LEFT = "deadlines-left"

#: ``PartitionState.indexes`` key prefix: the first day of a topic's dedupe horizon when its
#: buckets were last looked at (not persisted: a restored state looks again).
EXPIRED_THROUGH = "expired-through:"

#: Meta-store key prefix of a topic's dedupe clock: the newest event time read from it.
DEDUPE_CLOCK = "dedupe:"

#: Event-id dedupe is exact for events at most this far behind their topic's
#: newest event time (``LIENTHONG_DEDUPE_HORIZON_DAYS``; docs/exactly-once.md §3a).
DEFAULT_DEDUPE_HORIZON_DAYS = 30.0


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
    #: Headers of the source message kept on its dead letter (:func:`carried_headers`):
    #: the ``lienthong.replay.*`` lineage of a replayed message refused again, and the
    #: signature of a message refused whole, so a raw replay of it can be verified.
    carried: list[tuple[str, bytes]] = field(default_factory=list)
    #: Kafka key of the source message: its dead letter is keyed the same (set by the processor).
    key: bytes | None = None

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
        headers.extend(self.carried)
        return headers

    def record(self) -> dict[str, Any]:
        """As kept in the message's delta (``Delta.dead``), to be sent again on a replay."""
        record: dict[str, Any] = {"v": base64.b64encode(self.value).decode(),
                                  "h": [[k, v.decode()] for k, v in self.headers()]}
        if self.key is not None:
            record["k"] = base64.b64encode(self.key).decode()
        return record


#: Headers a replayed message carries (``lienthong deadletter replay``), kept on its new dead letter.
REPLAY_HEADER_PREFIX = "lienthong.replay."


def carried_headers(headers: Headers | None, whole: bool) -> list[tuple[str, bytes]]:
    """What a dead letter keeps of its source message's headers, in order.

    The replay lineage (``lienthong.replay.*``: a replayed message refused again
    still names the dead letter it came from); and, for a message refused whole
    (``whole``), its signing headers: they prove the very bytes of the dead
    letter, so ``lienthong deadletter replay`` of it is verified like the first
    send. An item of a batch keeps no signature (it covered the whole batch).
    """
    if not headers:
        return []
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return [(k, bytes(v)) for k, v in pairs
            if k.startswith(REPLAY_HEADER_PREFIX) or (whole and k in SIGNING_HEADERS)]


def dead_letter_of_record(record: dict[str, Any]) -> tuple[bytes, list[tuple[str, bytes]]]:
    """Value and headers of a dead letter kept in a delta (:meth:`DeadLetter.record`)."""
    return base64.b64decode(record["v"]), [(k, v.encode()) for k, v in record["h"]]


def dead_letter_key(record: dict[str, Any], default: bytes | None) -> bytes | None:
    """The source message's key kept with a dead letter (``default``: a delta written before keys were kept)."""
    key = record.get("k")
    return default if key is None else base64.b64decode(key)


class StateListener(Protocol):
    """Follows the partition states a processor holds, without reading them whole again."""

    def adopted(self, state: PartitionState) -> None: ...

    def dropped(self, state: PartitionState) -> None: ...

    def applied(self, partition: int, delta: Delta) -> None: ...


@dataclass(frozen=True, slots=True)
class SourceMessage:
    """One Kafka message of a group (:meth:`Processor.process_group`): its position, bytes and headers."""

    offset: int
    value: bytes
    timestamp: int
    headers: Headers | None = None
    key: bytes | None = None


@dataclass
class Outcome:
    delta: Delta | None = None
    skipped: bool = False
    dead_letters: list[DeadLetter] = field(default_factory=list)
    flag_changes: list[dict[str, Any]] = field(default_factory=list)
    accepted: Counter[str] = field(default_factory=Counter)
    duplicates: Counter[str] = field(default_factory=Counter)
    #: Messages (not covered by the fence) the change covers: a group may end early (process_group).
    consumed: int = 0
    #: The audit records of the accepted messages (``streams.audit``), for ``lienthong.audit``, in order.
    audits: list[dict[str, Any]] = field(default_factory=list)

    @property
    def audit(self) -> dict[str, Any] | None:
        """The last message's audit record (a one-message outcome's only one)."""
        return self.audits[-1] if self.audits else None


class Processor:
    def __init__(
        self,
        codec: EventCodec | None = None,
        rules: list[Reaction] | None = None,
        *,
        keyring: Keyring | None = None,
        redactor: DeadLetterRedactor | None = None,
        deadline_step: int = DEFAULT_DEADLINE_STEP,
        dedupe_horizon_days: float = DEFAULT_DEDUPE_HORIZON_DAYS,
    ) -> None:
        self.codec = codec or EventCodec()
        #: The flag rules; the reactions are the hub's own (:func:`core_reactions`), then these.
        self.rules = rules if rules is not None else default_rules()
        self.reactions: list[Reaction] = [*core_reactions(), *self.rules]
        #: Every store the reactions use, and the core's: what a partition's state opens.
        self.stores: tuple[StoreName, ...] = tuple(
            dict.fromkeys((*CORE_STORES, *(store for r in self.reactions for store in r.stores))))
        #: Due deadlines one message reconciles at most (``LIENTHONG_DEADLINE_STEP``).
        self.deadline_step = max(1, deadline_step)
        self.dedupe_horizon_ms = int(dedupe_horizon_days * 86_400_000)
        #: Verifies each message's signature before anything counts; ``None``: verification off.
        self.keyring = keyring
        #: Cleans every dead letter of ID numbers (masking only, unless given the pseudonym key).
        self.redactor = redactor or DeadLetterRedactor(self.codec)
        self.states: dict[int, PartitionState] = {}
        #: Told of every state adopted or dropped and every change committed (``CityView``'s counters).
        self.listeners: list[StateListener] = []
        #: event type → the ``on_event`` hooks that react to it (see ``event_hooks``)
        self._hooks: dict[str, list[Callable[[Event, Change], None]]] = {}
        # each hook of the protocol, from the reactions that implement it, in order
        self._on_duplicate: list[Callable[[Event, Change], None]] = hooks_of(self.reactions, "on_duplicate")
        self._on_dead_letter: list[Callable[[ContractError, SourcePosition, Change], None]] = hooks_of(
            self.reactions, "on_dead_letter")
        self._on_beyond_horizon: list[Callable[[Event, Change], None]] = hooks_of(self.reactions, "on_beyond_horizon")
        self._on_watermark: list[Callable[[int, Change], None]] = hooks_of(self.reactions, "on_watermark")
        self._on_clock: list[Callable[[str, int, Change], None]] = hooks_of(self.reactions, "on_clock")

    def state(self, partition: int) -> PartitionState:
        if partition not in self.states:
            self.states[partition] = PartitionState(partition, self.stores)
        return self.states[partition]

    def adopt(self, state: PartitionState) -> None:
        state.open_stores(self.stores)  # a state opened or folded without them still has them all
        old = self.states.get(state.partition)
        if old is not None and old is not state:
            for listener in self.listeners:
                listener.dropped(old)
        self.states[state.partition] = state
        if old is not state:
            for listener in self.listeners:
                listener.adopted(state)

    def drop(self, partition: int) -> None:
        state = self.states.pop(partition, None)
        if state is not None:
            for listener in self.listeners:
                listener.dropped(state)

    def event_hooks(self, event_type: str) -> list[Callable[[Event, Change], None]]:
        """The reactions' ``on_event`` hooks for one event type, worked out once per type.

        Several calls per event are saved: a hook a reaction leaves as BaseReaction's
        no-op is skipped, and so is one whose ``event_types`` leave this type out.
        """
        hooks = self._hooks.get(event_type)
        if hooks is None:
            hooks = self._hooks[event_type] = hooks_of(self.reactions, "on_event", event_type)
        return hooks

    def _refused(self, dead: DeadLetter, change: Change) -> None:
        """A message or item refused by its contract: the reactions told (counted, CONTRACT_VIOLATION)."""
        for on_dead_letter in self._on_dead_letter:
            on_dead_letter(dead.error, dead.where, change)

    def _beyond_horizon(
        self, event: Event, where: SourcePosition, batch_index: int | None, proof: Proof | None,
        change: Change, dead_letters: list[DeadLetter],
    ) -> None:
        """An event older than the dedupe horizon behind its topic's newest event time.

        Its id may have been forgotten, so it cannot be told from a re-send: it is
        not counted (never twice), but dead-lettered with the reason (nothing is
        lost: an operator can look and re-date it) and tallied as LATE_EVENT.
        """
        days = self.dedupe_horizon_ms / 86_400_000
        error = ContractError(
            "occurred_at",
            f"older than the dedupe horizon ({days:g} days behind the newest event of {where.topic}): "
            "it cannot be told from a re-sent event, so it is not counted",
            event["event_type"],
        )
        dead = DeadLetter(self.codec.encode(event, check=False), error, where, batch_index=batch_index)
        dead.proof = proof
        dead_letters.append(self.redact(dead))
        for on_beyond_horizon in self._on_beyond_horizon:
            on_beyond_horizon(event, change)

    def _expire_buckets(self, change: Change, topic: str, newest: int) -> None:
        """Move the topic's dedupe clock to ``newest``; forget buckets whose day left the horizon."""
        change.set(META, DEDUPE_CLOCK + topic, newest)
        keep_from = local_day(newest - self.dedupe_horizon_ms)
        # buckets are days: nothing new can leave the horizon until its first day moves
        # (an event older than it is refused, so opens no bucket below it)
        looked = EXPIRED_THROUGH + topic
        if change.state.indexes.get(looked) == keep_from:
            return
        change.state.indexes[looked] = keep_from
        prefix = f"{topic}|"
        # a group's change may have opened buckets of its own (not in the state yet)
        for bucket in (*change.state.seen, *change.seen_order):
            if bucket.startswith(prefix) and bucket[len(prefix):] < keep_from and bucket not in change.expired:
                change.expire(bucket)

    def work_off_deadlines(self, change: Change, watermark: int) -> None:
        """Go on with deadlines an earlier message left due (its budget ran out).

        Every clock is offered again at its current value, so each rule takes the
        next due deadlines of its heap, up to what is left of this message's
        budget (``Change.deadline_budget``): a backlog made due at once is worked
        off a bounded step per message, each step in that message's fenced delta.
        """
        change.deadlines_left = False
        for clock_topic in CLOCKED_TOPICS:
            clock = clock_of(change, clock_topic)
            for on_clock in self._on_clock:
                on_clock(clock_topic, clock, change)
        for on_watermark in self._on_watermark:
            on_watermark(watermark, change)

    def decode(
        self, value: bytes, where: SourcePosition, agency: str | None = None
    ) -> tuple[list[Event], list[DeadLetter]]:
        """Valid events of a message; refused ones (or the whole message) as dead letters.

        With ``agency`` (the proven signer), an event whose ``source`` is another
        agency is refused too: a key proves only its own agency's events.
        """
        events, dead, _ = self.decode_indexed(value, where, agency)
        return events, dead

    def decode_indexed(
        self, value: bytes, where: SourcePosition, agency: str | None = None
    ) -> tuple[list[Event], list[DeadLetter], list[int] | None]:
        """As :meth:`decode`, with each valid event's index in its batch (None: not a batch).

        The policy is the codec's (:meth:`schemas.codec.EventCodec.decode_each`): per item.
        """
        decoded = self.codec.decode_each(value, lambda event: _signed_by(validate(event), agency))
        dead = [DeadLetter(r.value, r.error, where, batch_index=r.batch_index) for r in decoded.refused]
        return decoded.events, dead, decoded.indexes

    def verified_decode(
        self, value: bytes, where: SourcePosition, headers: Headers | None
    ) -> tuple[list[Event], list[DeadLetter], Proof | None]:
        """:meth:`decode` after the signature check; every dead letter cleaned of ID numbers.

        A message whose signature is missing, unknown or wrong is refused whole:
        nothing in it is proven. The proof is ``None`` when verification is off.
        """
        events, dead, proof, _ = self.verified_decode_indexed(value, where, headers)
        return events, dead, proof

    def verified_decode_indexed(
        self, value: bytes, where: SourcePosition, headers: Headers | None
    ) -> tuple[list[Event], list[DeadLetter], Proof | None, list[int] | None]:
        """As :meth:`verified_decode`, with each valid event's index in its batch (None: not a batch)."""
        proof = None
        if self.keyring is not None:
            try:
                proof = self.keyring.verify(value, headers)
            except ContractError as exc:
                return [], [self.redact(DeadLetter(value, exc, where))], None, None
        events, dead, indexes = self.decode_indexed(value, where, proof.agency if proof else None)
        for letter in dead:
            letter.proof = proof
        return events, [self.redact(letter) for letter in dead], proof, indexes

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
        return self.process_group(topic, partition, [SourceMessage(offset, value, timestamp, headers)], now_ms, idle)

    def process_group(
        self,
        topic: str,
        partition: int,
        messages: Sequence[SourceMessage],
        now_ms: int | None = None,
        idle: Collection[str] | None = None,
    ) -> Outcome:
        """Apply messages of one topic-partition, in offset order, as **one** state change.

        The group commit of the live path (issue 16): a single-event message costs
        about what an event inside a batch costs, because the delta, its changelog
        record, its store write and the fence (the group's last offset) are paid
        once per group. The result is the state processing them one by one would
        give: each message is still verified, decoded, deduplicated and flagged in
        turn, reading the writes of the messages before it (read-your-writes).
        Messages the fence already covers are left out (``skipped`` when all are).
        A change stops after the message that spends the deadline step's budget
        (§2a of docs/exactly-once.md): ``consumed`` says how many of the fresh
        messages it covers; the caller hands the rest in again.
        """
        state = self.state(partition)
        fresh = [m for m in messages if not state.is_applied(topic, m.offset)]
        if not fresh:
            return Outcome(skipped=True)
        change = state.begin(topic, fresh[-1].offset, self.deadline_step)
        change.first_offset = fresh[0].offset
        outcome = Outcome()
        for message in fresh:
            self._apply_message(change, outcome, topic, partition, message, now_ms, idle)
            outcome.consumed += 1
            if state.indexes.get(DEADLINES_LEFT, True):
                self.work_off_deadlines(change, change.watermark)
            state.indexes[DEADLINES_LEFT] = change.deadlines_left
            if change.deadlines_left:
                # the step's budget is spent: the rest of the group is the next change's,
                # so due deadlines are still worked off a step per message (§2a)
                break
        change.offset = fresh[outcome.consumed - 1].offset
        outcome.flag_changes = change.flag_changes
        change.dead = [dead.record() for dead in outcome.dead_letters]
        change.audits = outcome.audits if len(outcome.audits) > 1 else []
        outcome.delta = change.commit()
        for listener in self.listeners:
            listener.applied(partition, outcome.delta)
        return outcome

    def _apply_message(
        self,
        change: Change,
        outcome: Outcome,
        topic: str,
        partition: int,
        message: SourceMessage,
        now_ms: int | None,
        idle: Collection[str] | None,
    ) -> None:
        """One message's share of a change: verify, decode, dedupe, count, flag, move the clocks."""
        where = change.source = SourcePosition(topic, partition, message.offset, message.timestamp)
        change.now_ms = now_ms
        events, dead_letters, proof, indexes = self.verified_decode_indexed(message.value, where, message.headers)
        if events or proof is not None:
            outcome.audits.append(audit.append(change, where, message.value, proof, events))
        for dead in dead_letters:
            self._refused(dead, change)
        watermark = before = change.watermark
        newest = 0  # newest event time of this message (one topic: one feed's clock)
        hooks_for = self.event_hooks
        on_duplicates = self._on_duplicate
        first_sighting = change.first_sighting
        accepted: dict[str, int] = {}
        # dedupe: exact within the horizon behind this topic's newest event time (docs/exactly-once.md §3a)
        dedupe_clock = int(change.get(META, DEDUPE_CLOCK + topic, 0) or 0)
        oldest = dedupe_clock - self.dedupe_horizon_ms
        newest_any = dedupe_clock
        for position, event in enumerate(events):
            at = event["occurred_at"]
            if at < oldest:
                self._beyond_horizon(event, where, None if indexes is None else indexes[position], proof, change,
                                     dead_letters)
                continue
            if at > newest_any:
                newest_any = at
            day = local_day(at)
            if not first_sighting(event["event_id"], f"{topic}|{day}"):  # dedupe_bucket, inlined
                outcome.duplicates[event["source"]] += 1
                for on_duplicate in on_duplicates:
                    on_duplicate(event, change)
                continue
            source = event["source"]
            accepted[source] = accepted.get(source, 0) + 1
            for hook in hooks_for(event["event_type"]):
                hook(event, change)
            # heartbeats carry wall-clock time; only agency events move event time
            if at > newest and event["event_type"] not in WALL_CLOCK_EVENTS:
                newest = at
        watermark = max(watermark, newest)
        if newest_any > dedupe_clock:
            self._expire_buckets(change, topic, newest_any)
        outcome.accepted.update(accepted)
        # Within one change the idle set is the same for every message, and after a first
        # advance the clocks are at rest for it: only a feed's own clock moving can move any.
        if not change.clocks_at_rest or newest > clock_of(change, topic):
            for clock_topic, clock in advance_clocks(change, topic, newest, idle):
                for on_clock in self._on_clock:
                    on_clock(clock_topic, clock, change)
            change.clocks_at_rest = True
        if watermark > before:
            change.set(META, "watermark", watermark)
            for on_watermark in self._on_watermark:
                on_watermark(watermark, change)
        for dead in dead_letters:
            dead.key = message.key
            if message.headers:
                dead.carried = carried_headers(message.headers, whole=dead.batch_index is None)
        outcome.dead_letters.extend(dead_letters)


def core_reactions() -> list[Reaction]:
    """The hub's own reactions, before any flag rule: the city's counters, agency liveness, the scorecard's counters."""
    return [Counting(), AgencyLiveness(), ScorecardCounting()]


def _signed_by(event: Event, agency: str | None) -> Event:
    if agency is not None and event["source"] != agency:
        raise ContractError("source", f"the message is signed by {agency}, not {event['source']}", event["event_type"])
    return event
