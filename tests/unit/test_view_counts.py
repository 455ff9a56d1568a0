"""The view counts flags without holding them: flag counters, the roll-up index, streamed pages."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from schemas.topics import IDENTITY, INSURANCE
from streams.api.flag_pages import PageRequest, key_of, page_of
from streams.clock import local_day
from streams.flags import default_rules
from streams.flags.records import FLAGS, flag_count_metric, make_flag, reconcile
from streams.flags.rollups import merged_rollups
from streams.processor import Processor
from streams.state import PartitionState, counter_key
from streams.view import CityView, RollupIndex, snapshot_of
from tests.unit.test_flags import CODEC, T0, WARD, D, H, card, sync, welfare

TOPIC_OF = {"IdCardIssued": IDENTITY, "HealthInsuranceSynced": INSURANCE, "WelfarePaid": "lienthong.welfare"}


def flag(status: str = "OPEN", subject: str = "c1", resolved_at: int | None = None) -> dict[str, Any]:
    return make_flag("SYNC_MISSING", status=status, agency="SOCIAL_INSURANCE", ward=WARD, subject=subject,
                     opened_at=T0, resolved_at=resolved_at)


def counted(state: PartitionState, status: str) -> int:
    return state.counters[counter_key(flag_count_metric(status, "SYNC_MISSING", "SOCIAL_INSURANCE"), WARD,
                                      local_day(T0))]


def reconciled(state: PartitionState, desired: dict[str, Any] | None) -> None:
    change = state.begin("t", state.applied.get("t", -1) + 1)
    reconcile(change, "SYNC_MISSING:c1", desired)
    change.commit()


def test_a_flag_is_counted_by_status_as_it_opens_resolves_and_is_withdrawn() -> None:
    state = PartitionState(0)
    reconciled(state, flag())
    assert (counted(state, "OPEN"), counted(state, "RESOLVED")) == (1, 0)
    reconciled(state, flag("RESOLVED", resolved_at=T0 + H))
    assert (counted(state, "OPEN"), counted(state, "RESOLVED")) == (0, 1)
    reconciled(state, flag())  # re-opened by a correction
    assert (counted(state, "OPEN"), counted(state, "RESOLVED")) == (1, 0)
    reconciled(state, None)  # withdrawn: the data was within its SLA after all
    assert (counted(state, "OPEN"), counted(state, "RESOLVED")) == (0, 0)
    assert not state.stores[FLAGS]


def city(processor: Processor, seed: int) -> None:
    """Cards on several partitions and days, some synced late, some never; enough per ward × day
    for roll-ups on some partitions; welfare payments move the clocks past every deadline."""
    rng = random.Random(seed)
    offsets: Counter[tuple[str, int]] = Counter()

    def send(partition: int, event: dict[str, Any]) -> None:
        topic = TOPIC_OF[event["event_type"]]
        processor.process(topic, partition, offsets[(topic, partition)], CODEC.encode(event), T0, now_ms=T0)
        offsets[(topic, partition)] += 1

    citizen = 0
    for day in range(3):
        for partition in range(4):
            for _ in range(rng.choice([1, 2, 4, 5])):
                citizen += 1
                send(partition, card(T0 + day * D + rng.randrange(H), citizen))
                if rng.random() < 0.3:
                    send(partition, sync(T0 + day * D + rng.choice([H, 5 * D]), citizen))
    for partition in range(4):
        send(partition, welfare(T0 + 9 * D))


def open_by_type(flags: list[dict[str, Any]]) -> Counter[str]:
    return Counter(f["type"] for f in flags if f["status"] == "OPEN")


def test_the_open_flag_counts_equal_a_count_of_the_flags_themselves() -> None:
    for seed in range(5):
        processor = Processor(CODEC, default_rules())
        view = CityView()
        view.track(processor)
        city(processor, seed)
        flags = view.flags
        assert any(f["subject"].startswith("SOCIAL_INSURANCE/") for f in flags), "no roll-up in this city"
        by_type: Counter[str] = Counter()
        for (flag_type, _), n in view.open_flags_by().items():
            by_type[flag_type] += n
        assert by_type == open_by_type(flags)
        day = local_day(T0 + 3 * D)
        assert sum(view.open_flags_by(ward=WARD, day=day).values()) == sum(
            1 for f in flags if f["status"] == "OPEN" and f["ward_code"] == WARD and local_day(f["opened_at"]) == day)
        assert view.kpis()["flags_open"] == sum(open_by_type(flags).values())


def rebuilt(view: CityView) -> Counter[tuple[str, str]]:
    partials = [p for _, s in view._sources() for p in (
        s.stores["partials"].values() if isinstance(s, PartitionState) else s["partials"])]
    return Counter((f["ward_code"], local_day(f["opened_at"])) for f in merged_rollups(partials)
                   if f["status"] == "OPEN")


def test_a_tracking_view_keeps_the_open_roll_ups_through_commits_revocations_and_snapshots() -> None:
    processor = Processor(CODEC, default_rules())
    view = CityView()
    view.track(processor)
    city(processor, 1)
    assert view.rollups.open and view.rollups.open == rebuilt(view)
    other = processor.states[2]
    view.accept_snapshot(snapshot_of(other, "us"))  # as on revocation: our last word on it stays
    processor.drop(2)
    assert view.rollups.open == rebuilt(view)
    view.accept_snapshot(dict(snapshot_of(PartitionState(2, processor.stores), "new-owner"), seq=other.seq + 1))  # emptied
    assert view.rollups.open == rebuilt(view)
    processor.adopt(other)  # back to us
    assert view.rollups.open == rebuilt(view)


def test_a_roll_up_is_open_from_the_first_deadline_of_its_open_partials() -> None:
    index = RollupIndex()
    group = f"{WARD}|2024-06-01"

    def partial(status: str, opened_at: int) -> dict[str, Any]:
        return {"status": status, "count": 3, "opened_at": opened_at}

    index.put(0, group, partial("OPEN", T0 + 3 * D))
    index.put(1, group, partial("RESOLVED", T0 + 2 * D))  # earlier: the merged flag opened then
    assert index.open == Counter({(WARD, local_day(T0 + 2 * D)): 1})
    index.put(0, group, partial("RESOLVED", T0 + 3 * D))
    assert not index.open
    index.put(1, group, None)
    index.put(0, group, None)
    assert not index.groups


def test_a_streamed_page_is_the_page_of_every_flag_sorted() -> None:
    rng = random.Random(7)
    flags = [dict(flag(subject=f"c{i}"), opened_at=T0 + rng.randrange(50) * H) for i in range(400)]
    for order in ("asc", "desc"):
        ordered = sorted(flags, key=key_of, reverse=order == "desc")
        for after in (None, key_of(ordered[37]), key_of(ordered[-1])):
            request = PageRequest(limit=25, after=after, order=order)
            page = page_of(iter(flags), request)
            rest = [f for f in ordered if after is None or (key_of(f) < after if order == "desc" else key_of(f) > after)]
            assert [f["flag_id"] for f in page["flags"]] == [f["flag_id"] for f in rest[:25]]
            assert page["total"] == 400 and (page["next_cursor"] is not None) == (len(rest) > 25)
