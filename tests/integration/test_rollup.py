"""Police onboard first: a real worker shows one roll-up flag, with the citizens behind it on demand."""

from __future__ import annotations

import urllib.parse

import pytest

from schemas.contracts import partition_key
from schemas.partitioning import partition_for
from tests.integration.test_flags import alerts, publish
from tests.support import WorkerProcess, wait_for
from tests.unit.test_flags import T0, WARD, D, card, welfare

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


def test_cards_with_a_silent_insurance_feed_raise_one_roll_up_with_its_citizens_behind_it(broker, tmp_path):
    worker = WorkerProcess(broker, tmp_path, "rollup")
    worker.env["LIENTHONG_SLA_SOURCE_IDLE"] = str(2 / 3600)  # an idle feed after 2 s of nothing to read
    try:
        worker.start()
        check_roll_up(broker, worker)
    finally:
        worker.kill()


def check_roll_up(broker: str, worker: WorkerProcess) -> None:
    cards = [card(T0 + i * 60_000, c) for i, c in enumerate(citizens_on_partition(0, 6))]
    publish(broker, *cards)
    wait_for(lambda: worker.kpis()["id_cards_issued"] == 6, 60, what="the cards")
    [mover] = citizens_on_partition(0, 1, start=1000)

    def rolled_up() -> list[dict]:
        # event time moves on the partition only with its messages: nudge it until the feeds are idle
        publish(broker, welfare(T0 + 5 * D, citizen=mover))
        return [f for f in worker.get("/api/flags?type=SYNC_MISSING")["flags"]]

    flags = wait_for(rolled_up, 60, interval=1.0, what="the roll-up")
    [flag] = flags
    assert flag["subject"] == f"SOCIAL_INSURANCE/{WARD}/2024-06-01/p0" and flag["detail"].startswith("6 ID card(s)")
    body = worker.get(f"/api/flags/subjects?flag_id={urllib.parse.quote(flag['flag_id'], safe='')}")
    assert body["count"] == 6
    assert sorted(s["evidence"][0] for s in body["subjects"]) == sorted(c["event_id"] for c in cards)
    assert [a["subject"] for a in alerts(broker) if a["type"] == "SYNC_MISSING"] == [flag["subject"]]
