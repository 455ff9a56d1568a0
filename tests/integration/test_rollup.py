"""Police onboard first: a real worker shows one roll-up flag, with the citizens behind it on demand."""

from __future__ import annotations

import urllib.parse

import pytest

from schemas.partitioning import partition_for
from schemas.topics import partition_key
from tests.integration.test_flags import alerts, publish
from tests.support import WorkerProcess, wait_for
from tests.unit.test_flags import T0, WARD, D, card, sync, welfare

pytestmark = pytest.mark.integration


def citizens_on_partition(partition: int, n: int, start: int = 0) -> list[int]:
    """Citizen numbers whose events land on ``partition`` (of 8), so they share one clock."""
    found = []
    c = start
    while len(found) < n:
        if partition_for(partition_key(card(T0, c)), 8) == partition:
            found.append(c)
        c += 1
    return found


#: Cards of one ward and day on each of these partitions (of 8): a roll-up's citizens span partitions.
SPREAD = {0: 6, 3: 4, 5: 3}


def test_cards_with_a_silent_insurance_feed_raise_one_roll_up_with_its_citizens_behind_it(broker, tmp_path):
    worker = WorkerProcess(broker, tmp_path, "rollup")
    worker.env["LIENTHONG_SLA_SOURCE_IDLE"] = str(2 / 3600)  # an idle feed after 2 s of nothing to read
    try:
        worker.start()
        check_roll_up(broker, worker)
    finally:
        worker.kill()


def check_roll_up(broker: str, worker: WorkerProcess) -> None:
    """Cards of one ward × day on several partitions: ONE flag with the total, on the API and the alerts."""
    cards = [card(T0 + i * 60_000, c) for p, n in SPREAD.items() for i, c in enumerate(citizens_on_partition(p, n))]
    total = len(cards)
    publish(broker, *cards)
    wait_for(lambda: worker.kpis()["id_cards_issued"] == total, 60, what="the cards")
    movers = [citizens_on_partition(p, 1, start=1000)[0] for p in SPREAD]

    def rolled_up() -> list[dict]:
        # event time moves on a partition only with its messages: nudge each until the feeds are idle
        publish(broker, *(welfare(T0 + 5 * D, citizen=m) for m in movers))
        flags = worker.get("/api/flags?type=SYNC_MISSING")["flags"]
        return flags if flags and flags[0]["detail"].startswith(f"{total} ID card(s)") else []

    flags = wait_for(rolled_up, 90, interval=1.0, what="the roll-up of every partition")
    [flag] = flags
    assert flag["subject"] == f"SOCIAL_INSURANCE/{WARD}/2024-06-01" and flag["status"] == "OPEN"
    assert flag["flag_id"] == f"SYNC_MISSING:{flag['subject']}"
    body = worker.get(f"/api/flags/subjects?flag_id={urllib.parse.quote(flag['flag_id'], safe='')}")
    assert body["count"] == total
    assert sorted(s["evidence"][0] for s in body["subjects"]) == sorted(c["event_id"] for c in cards)

    def announced() -> list[tuple[str, str]]:
        # at-least-once: consumers dedupe by flag_id + status
        return sorted({(a["flag_id"], a["status"]) for a in alerts(broker) if a["type"] == "SYNC_MISSING"})

    assert wait_for(announced, 30, what="the roll-up on lienthong.alerts") == [(flag["flag_id"], "OPEN")]

    # every late sync arrives (dated after the window: resolves, does not release): ONE resolution, the total
    publish(broker, *(sync(T0 + 6 * D + i, citizen=c) for p, n in SPREAD.items()
                      for i, c in enumerate(citizens_on_partition(p, n))))

    def resolved() -> list[dict]:
        return [a for a in alerts(broker) if a["type"] == "SYNC_MISSING" and a["status"] == "RESOLVED"]

    resolutions = wait_for(resolved, 60, what="the roll-up resolved on lienthong.alerts")
    assert {a["flag_id"] for a in resolutions} == {flag["flag_id"]}
    assert resolutions[0]["detail"].startswith(f"{total} ID card(s)") and "; 0 still missing" in resolutions[0]["detail"]
    assert announced() == [(flag["flag_id"], "OPEN"), (flag["flag_id"], "RESOLVED")]
    shown = wait_for(lambda: [(f["flag_id"], f["status"]) for f in worker.get("/api/flags?type=SYNC_MISSING")["flags"]
                              if f["status"] == "RESOLVED"], 30, what="the resolved roll-up on the API")
    assert shown == [(flag["flag_id"], "RESOLVED")]
