"""A deterministic city: the records Ho Chi Minh City's agencies would publish.

The city is told as *stories*, each the few records one citizen or one dossier
leaves across agencies: an ID card, then (maybe) an e-ID activation, the
social-insurance sync and hospital check-ins of the same citizen; a birth that
should become a permanent residence and a child's insurance card; a death that
should become a residence deletion and a funeral allowance; a portal dossier
submitted and (usually, on time) completed. How often each story happens and how
it tends to go is a :class:`CityShape`, whose defaults follow the city's public
figures in docs/product.md, so a replay gives back rates shaped like those figures.

Records come out in *arrival* order: mostly the order they happened, except the
few late ones (``occurred_at`` a day or more behind the others) and the
duplicates (the same ``event_id`` re-sent a little later), exactly the
imperfections the hub must survive. Everything, event ids included, is drawn
from the seed, so the same seed gives the same city, and the stream has no fixed
end: a simulation can run until stopped, and a fixed-size city is just a prefix.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from schemas.contracts import SOURCE_OF_EVENT
from schemas.wards import city_wards

RawEvent = dict[str, Any]

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
#: Vietnam keeps UTC+7 all year; used only to shape activity by local hour.
CITY_OFFSET_MS = 7 * HOUR_MS
#: The Identity Law 2023 took effect on 2024-07-01 (+07:00): new cards are "Căn cước".
CAN_CUOC_FROM_MS = 1_719_766_800_000
#: Namespace of simulated event ids (uuid5 of seed and index); fixed so ids repeat per seed.
SIMULATION_NAMESPACE = uuid.UUID("0c6d3f0e-4b8e-5a57-9d1f-6f7e2a1c5b93")
#: The city's province code, the first three digits of a personal ID number.
PROVINCE_PREFIX = "079"

# fmt: off
#: Relative activity by local hour: counters open 7:30-11:30 and 13:30-17:00.
HOURLY_ACTIVITY: tuple[float, ...] = (
    0.15, 0.10, 0.10, 0.10, 0.15, 0.30, 0.60, 1.40, 1.90, 1.90, 1.80, 1.50,
    0.90, 1.10, 1.80, 1.80, 1.50, 1.00, 0.70, 0.60, 0.50, 0.40, 0.30, 0.20,
)
# fmt: on
_MEAN_ACTIVITY = sum(HOURLY_ACTIVITY) / len(HOURLY_ACTIVITY)

PROCEDURES: tuple[tuple[str, str, int], ...] = (
    # (national procedure code, handling agency, days allowed)
    ("1.001612", "CONG_AN_TP", 7),  # permanent residence registration
    ("1.004227", "SO_TU_PHAP", 10),  # judicial record certificate
    ("2.000908", "UBND_PHUONG", 3),  # certified copy
    ("1.010736", "SO_LDTBXH", 15),  # social allowance
    ("1.004194", "SO_XAY_DUNG", 15),  # construction permit
    ("1.001766", "SO_KE_HOACH_DAU_TU", 5),  # business registration
)
SYNC_FAILURES: tuple[str, ...] = (
    "CARD_NOT_IN_INSURANCE_DB",
    "PERSONAL_DATA_MISMATCH",
    "UPSTREAM_TIMEOUT",
)
WELFARE_AMOUNTS_VND: tuple[int, ...] = (500_000, 750_000, 1_000_000, 1_500_000, 2_000_000)
#: 408 of the city's 409 facilities check patients in by ID card.
FACILITIES = 408


@dataclass(frozen=True)
class CityShape:
    """How often each story happens (per 100 ID cards) and how each tends to go.

    Shares follow docs/product.md's figures; the rarest flows (absence notices, births,
    deaths) are scaled up so a few thousand events still show every flow.
    """

    story_weights: tuple[tuple[str, float], ...] = (
        ("citizen", 100.0),
        ("residence", 30.0),
        ("moved_away", 2.0),
        ("procedure", 15.0),
        ("birth", 3.0),
        ("death", 1.5),
        ("judicial", 3.0),
        ("welfare", 5.0),
        ("insurance_card", 2.0),
    )
    #: ~60 e-ID activations per 100 cards, ~23 of them level 2.
    eid_activation: float = 0.60
    eid_level2: float = 23 / 60
    #: ~95 insurance syncs per 100 cards (the rest never arrive: SYNC_MISSING), 3-5% failing.
    insurance_sync: float = 0.95
    insurance_sync_failed: float = 0.04
    #: Syncs arriving days after the card (past any sensible SLA).
    insurance_sync_late: float = 0.08
    #: P(0, 1, 2, 3 check-ins) per carded citizen: ~110 check-ins per 100 cards.
    checkins: tuple[float, ...] = (0.30, 0.40, 0.20, 0.10)
    checkin_lookup_error: float = 0.01
    #: Registration kinds (stay notices dominate; absence floored at 2% to stay visible).
    residence_kinds: tuple[tuple[str, float], ...] = (
        ("PERMANENT", 0.10),
        ("TEMPORARY", 0.27),
        ("ABSENCE", 0.02),
        ("STAY_NOTICE", 0.61),
    )
    residence_online: tuple[tuple[str, float], ...] = (
        ("PERMANENT", 59_347 / 61_998),
        ("TEMPORARY", 206_941 / 222_115),
        ("ABSENCE", 563 / 629),
        ("STAY_NOTICE", 561_532 / 567_299),
    )
    #: 611 end-to-end and 355 partial online procedures; a few still at the counter.
    online_levels: tuple[tuple[str, float], ...] = (
        ("FULL", 611.0),
        ("PARTIAL", 355.0),
        ("NONE", 20.0),
    )
    procedure_never_completed: float = 0.12
    #: Dossiers split between city and ministry systems run late more often.
    procedure_on_time: tuple[tuple[str, float], ...] = (
        ("FULL", 0.92),
        ("PARTIAL", 0.78),
        ("NONE", 0.70),
    )
    procedure_outcomes: tuple[tuple[str, float], ...] = (
        ("APPROVED", 0.90),
        ("REJECTED", 0.07),
        ("WITHDRAWN", 0.03),
    )
    birth_chain_complete: float = 20_630 / 27_513
    death_chain_complete: float = 2_743 / 4_229
    judicial_channels: tuple[tuple[str, float], ...] = (
        ("VNEID", 0.45),
        ("PORTAL", 0.35),
        ("COUNTER", 0.20),
    )
    welfare_cashless: float = 0.88
    child_insurance_card: float = 0.5
    #: Share of records re-sent with the same event_id, and arriving a day or more late.
    duplicate: float = 0.01
    late: float = 0.01

    def mean_events_per_story(self) -> float:
        """Expected records per story, to turn a target events/day into a story rate."""
        checkins = sum(n * p for n, p in enumerate(self.checkins))
        never = self.procedure_never_completed

        def chain(complete: float) -> float:
            return complete * 3 + (1 - complete) * (0.4 * 1 + 0.6 * 2)

        per_story = {
            "citizen": 1 + self.eid_activation + self.insurance_sync + checkins,
            "procedure": 2 - never,
            "birth": chain(self.birth_chain_complete),
            "death": chain(self.death_chain_complete),
        }
        total = sum(w for _, w in self.story_weights)
        mean = sum(w * per_story.get(kind, 1.0) for kind, w in self.story_weights) / total
        return mean * (1 + self.duplicate)


def _picker(pairs: tuple[tuple[str, float], ...]) -> tuple[list[str], list[float]]:
    names = [name for name, _ in pairs]
    cumulative = list(itertools.accumulate(w for _, w in pairs))
    return names, cumulative


class _City:
    """The generator's state: one seeded RNG, a clock and the records not yet arrived."""

    def __init__(self, seed: int, start_ms: int, events_per_day: float, shape: CityShape) -> None:
        if events_per_day <= 0:
            raise ValueError("events_per_day must be positive")
        self.seed = seed
        self.shape = shape
        self.rng = random.Random(seed)
        self.clock = float(start_ms)
        self.mean_gap_ms = DAY_MS * shape.mean_events_per_story() / events_per_day
        wards = sorted(city_wards())
        # Some wards are far busier than others; which ones is part of the seed's city.
        self.wards = wards
        self.ward_cumulative = list(
            itertools.accumulate(self.rng.lognormvariate(0, 0.6) for _ in wards)
        )
        self.stories = _picker(shape.story_weights)
        self.residence_kinds = _picker(shape.residence_kinds)
        self.online_levels = _picker(shape.online_levels)
        self.outcomes = _picker(shape.procedure_outcomes)
        self.judicial_channels = _picker(shape.judicial_channels)
        self.residence_online = dict(shape.residence_online)
        self.on_time = dict(shape.procedure_on_time)
        self.pending: list[tuple[float, int, RawEvent]] = []
        self.push_order = itertools.count()
        self.event_index = itertools.count()
        self.citizen_serial = itertools.count()
        self.dossier_serial = itertools.count()

    # -- drawing -------------------------------------------------------------
    def pick(self, picker: tuple[list[str], list[float]]) -> str:
        names, cumulative = picker
        return names[bisect.bisect_right(cumulative, self.rng.random() * cumulative[-1])]

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def within(self, low_ms: float, high_ms: float) -> float:
        return self.rng.uniform(low_ms, high_ms)

    def ward(self) -> str:
        x = self.rng.random() * self.ward_cumulative[-1]
        return self.wards[bisect.bisect_right(self.ward_cumulative, x)]

    def citizen_id(self, birth_year: int) -> str:
        """A 12-digit personal ID: province, sex/century, year of birth, serial.

        The last six digits are a bijective scramble of a counter, so no two
        simulated citizens share a number (the first million of them at least).
        """
        century = 0 if birth_year < 2000 else 2
        sex = self.rng.randrange(2)
        serial = (next(self.citizen_serial) * 482_711 + self.seed * 7_919) % 1_000_000
        return f"{PROVINCE_PREFIX}{century + sex}{birth_year % 100:02d}{serial:06d}"

    def adult(self, at_ms: float) -> str:
        return self.citizen_id(self.rng.randint(1945, _year(at_ms) - 14))

    def dossier(self, prefix: str, at_ms: float) -> str:
        return f"{prefix}-{_yymmdd(at_ms)}-S{self.seed}-{next(self.dossier_serial):07d}"

    # -- records -------------------------------------------------------------
    def emit(
        self,
        event_type: str,
        at_ms: float,
        ward: str,
        citizen_id: str,
        correlation_id: str | None = None,
        **payload: Any,
    ) -> RawEvent:
        """Queue one record for arrival; a few arrive late, a few are re-sent."""
        event: RawEvent = {
            "event_type": event_type,
            "event_id": str(
                uuid.uuid5(SIMULATION_NAMESPACE, f"{self.seed}/{next(self.event_index)}")
            ),
            "source": SOURCE_OF_EVENT[event_type],
            "occurred_at": int(at_ms),
            "ward_code": ward,
            "citizen_id": citizen_id,
            "correlation_id": correlation_id,
            **payload,
        }
        arrival = float(event["occurred_at"])
        if self.chance(self.shape.late):
            arrival += self.within(DAY_MS, 3 * DAY_MS)
        heapq.heappush(self.pending, (arrival, next(self.push_order), event))
        if self.chance(self.shape.duplicate):
            resent = arrival + self.within(MINUTE_MS, 3 * HOUR_MS)
            heapq.heappush(self.pending, (resent, next(self.push_order), dict(event)))
        return event

    # -- stories -------------------------------------------------------------
    def story(self, t: float) -> None:
        kind = self.pick(self.stories)
        getattr(self, f"_{kind}")(t, self.ward())

    def _citizen(self, t: float, ward: str) -> None:
        """ID card → e-ID → insurance sync → hospital check-ins, one citizen throughout."""
        s = self.shape
        cid = self.adult(t)
        self.emit(
            "IdCardIssued",
            t,
            ward,
            cid,
            card_kind="CAN_CUOC" if t >= CAN_CUOC_FROM_MS else "CCCD_CHIP",
        )
        if self.chance(s.eid_activation):
            level = "LEVEL_2" if self.chance(s.eid_level2) else "LEVEL_1"
            self.emit(
                "EIdActivated", t + self.within(10 * MINUTE_MS, 3 * DAY_MS), ward, cid, level=level
            )
        insured_from: float | None = None
        if self.chance(s.insurance_sync):
            late = self.chance(s.insurance_sync_late)
            at = t + (
                self.within(2 * DAY_MS, 6 * DAY_MS)
                if late
                else self.within(5 * MINUTE_MS, 6 * HOUR_MS)
            )
            if self.chance(s.insurance_sync_failed):
                self.emit(
                    "HealthInsuranceSynced",
                    at,
                    ward,
                    cid,
                    outcome="FAILED",
                    failure_reason=self.rng.choice(SYNC_FAILURES),
                )
            else:
                self.emit(
                    "HealthInsuranceSynced", at, ward, cid, outcome="SYNCED", failure_reason=None
                )
                insured_from = at
        visits = bisect.bisect_right(
            list(itertools.accumulate(s.checkins)), self.rng.random() * sum(s.checkins)
        )
        for _ in range(min(visits, len(s.checkins) - 1)):
            at = t + self.within(HOUR_MS, 10 * DAY_MS)
            if self.chance(s.checkin_lookup_error):
                lookup = "ERROR"
            elif insured_from is not None and at >= insured_from:
                lookup = "FOUND"
            else:
                lookup = "NOT_FOUND"  # insurance not shared (yet) for a carded citizen
            facility = f"79-BV{self.rng.randint(1, FACILITIES):03d}"
            self.emit(
                "MedicalCheckIn", at, ward, cid, facility_code=facility, insurance_lookup=lookup
            )

    def _residence(self, t: float, ward: str) -> None:
        kind = self.pick(self.residence_kinds)
        channel = "ONLINE" if self.chance(self.residence_online[kind]) else "COUNTER"
        self.emit("ResidenceRegistered", t, ward, self.adult(t), kind=kind, channel=channel)

    def _moved_away(self, t: float, ward: str) -> None:
        self.emit("ResidenceDeregistered", t, ward, self.adult(t), reason="MOVED")

    def _procedure(self, t: float, ward: str) -> None:
        """A portal dossier: submitted with a deadline, completed on time, late, or never."""
        code, agency, days = self.rng.choice(PROCEDURES)
        level = self.pick(self.online_levels)
        dossier = self.dossier("HS", t)
        cid = self.adult(t)
        due = int(t) + days * DAY_MS
        self.emit(
            "ProcedureSubmitted",
            t,
            ward,
            cid,
            dossier,
            procedure_code=code,
            agency_code=agency,
            online_level=level,
            due_at=due,
        )
        if self.chance(self.shape.procedure_never_completed):
            return  # overdue for good
        if self.chance(self.on_time[level]):
            done = t + self.within(0.1, 1.0) * (due - t)
        else:
            done = due + self.within(HOUR_MS, 5 * DAY_MS)
        self.emit("ProcedureCompleted", done, ward, cid, dossier, outcome=self.pick(self.outcomes))

    def _chain_stage(self, complete: float) -> int:
        """How far an interconnected dossier gets: 3 (done) or stalled after step 1 or 2."""
        if self.chance(complete):
            return 3
        return 1 if self.chance(0.4) else 2

    def _birth(self, t: float, ward: str) -> None:
        """Birth → permanent residence → child insurance card, under one dossier id."""
        dossier = self.dossier("KS", t)
        child = self.citizen_id(_year(t))
        stage = self._chain_stage(self.shape.birth_chain_complete)
        self.emit("BirthRegistered", t, ward, child, dossier)
        if stage >= 2:
            t2 = t + self.within(2 * HOUR_MS, 2 * DAY_MS)
            channel = "ONLINE" if self.chance(self.residence_online["PERMANENT"]) else "COUNTER"
            self.emit(
                "ResidenceRegistered", t2, ward, child, dossier, kind="PERMANENT", channel=channel
            )
            if stage >= 3:
                t3 = t2 + self.within(DAY_MS, 5 * DAY_MS)
                self.emit(
                    "HealthInsuranceCardIssued", t3, ward, child, dossier, for_child_under_6=True
                )

    def _death(self, t: float, ward: str) -> None:
        """Death → residence deletion → funeral allowance, under one dossier id."""
        dossier = self.dossier("KT", t)
        deceased = self.citizen_id(self.rng.randint(1925, 1965))
        stage = self._chain_stage(self.shape.death_chain_complete)
        self.emit("DeathRegistered", t, ward, deceased, dossier)
        if stage >= 2:
            t2 = t + self.within(2 * HOUR_MS, 3 * DAY_MS)
            self.emit("ResidenceDeregistered", t2, ward, deceased, dossier, reason="DEATH")
            if stage >= 3:
                t3 = t2 + self.within(DAY_MS, 10 * DAY_MS)
                self.emit("FuneralAllowanceGranted", t3, ward, deceased, dossier)

    def _judicial(self, t: float, ward: str) -> None:
        self.emit(
            "JudicialRecordIssued",
            t,
            ward,
            self.adult(t),
            channel=self.pick(self.judicial_channels),
        )

    def _welfare(self, t: float, ward: str) -> None:
        channel = "BANK_ACCOUNT" if self.chance(self.shape.welfare_cashless) else "CASH"
        self.emit(
            "WelfarePaid",
            t,
            ward,
            self.adult(t),
            channel=channel,
            amount_vnd=self.rng.choice(WELFARE_AMOUNTS_VND),
        )

    def _insurance_card(self, t: float, ward: str) -> None:
        """A card issued outside the birth procedure (no dossier), child or adult."""
        child = self.chance(self.shape.child_insurance_card)
        cid = self.citizen_id(_year(t) - self.rng.randint(0, 5)) if child else self.adult(t)
        self.emit("HealthInsuranceCardIssued", t, ward, cid, for_child_under_6=child)

    # -- time ----------------------------------------------------------------
    def advance(self) -> None:
        """Move the clock to the next story: busy office hours, quiet nights."""
        hour = int(((self.clock + CITY_OFFSET_MS) // HOUR_MS) % 24)
        activity = HOURLY_ACTIVITY[hour] / _MEAN_ACTIVITY
        self.clock += self.rng.expovariate(1.0 / self.mean_gap_ms) / activity

    def __iter__(self) -> Iterator[RawEvent]:
        while True:
            self.story(self.clock)
            self.advance()
            # Every later story starts at or after the clock, so what is due has arrived.
            while self.pending and self.pending[0][0] <= self.clock:
                yield heapq.heappop(self.pending)[2]


def _year(at_ms: float) -> int:
    return datetime.fromtimestamp((at_ms + CITY_OFFSET_MS) / 1000, tz=UTC).year


def _yymmdd(at_ms: float) -> str:
    local = datetime.fromtimestamp((at_ms + CITY_OFFSET_MS) / 1000, tz=UTC)
    return local.strftime("%y%m%d")


def stream_city(
    seed: int, start_ms: int, events_per_day: float, shape: CityShape | None = None
) -> Iterator[RawEvent]:
    """An endless stream of raw records in arrival order, ``events_per_day`` on average."""
    return iter(_City(seed, start_ms, events_per_day, shape or CityShape()))


def generate_city(
    seed: int, start_ms: int, days: float, events: int, shape: CityShape | None = None
) -> list[RawEvent]:
    """Exactly ``events`` raw records spread over about ``days`` of city time.

    The same arguments always give the same list (event ids included); it is the
    prefix of :func:`stream_city` at the matching density, which is what a
    ``lienthong simulate --events N`` run publishes.
    """
    if events <= 0:
        return []
    return list(itertools.islice(stream_city(seed, start_ms, events / days, shape), events))
