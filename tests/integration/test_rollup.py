"""Police onboard first: a real worker shows one roll-up flag, with the citizens behind it on demand."""

from __future__ import annotations

import re
import urllib.parse
import urllib.request

import pytest

from schemas.contracts import partition_key
from schemas.partitioning import partition_for
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
    flag, total = open_roll_up(broker, worker)
    resolve_roll_up(broker, worker, flag, total)


@pytest.mark.parametrize("restarted_as", ["itself", "a worker that lost its disk"])
def test_a_disk_worker_killed_and_restarted_resolves_the_roll_up_it_announced_with_every_partition(
        broker, tmp_path, restarted_as):
    """The merge stage's table survives a SIGKILL: on the worker's own databases, or caught up from the partials.

    Without it, the first late sync's partial would be merged alone: a RESOLVED
    roll-up of one partition's cards, not of the ward and day.
    """
    env = {"LIENTHONG_STATE_STORE": "disk", "LIENTHONG_SLA_SOURCE_IDLE": str(2 / 3600)}
    worker = WorkerProcess(broker, tmp_path, "rollup-disk")
    worker.env.update(env)
    try:
        worker.start()
        flag, total = open_roll_up(broker, worker)
        worker.kill()
        worker = WorkerProcess(broker, tmp_path, "rollup-disk" if restarted_as == "itself" else "rollup-new")
        worker.env.update(env)
        worker.start()
        resolve_roll_up(broker, worker, flag, total)
        caught_up = metric(worker, "lienthong_rollup_partials_caught_up")
        if restarted_as == "itself":
            assert caught_up == 0  # its own table: not one partial read back
        else:
            assert caught_up >= len(SPREAD)  # every partition's partial, read back before the first new one
    finally:
        worker.kill()


def metric(worker: WorkerProcess, name: str) -> float:
    text = urllib.request.urlopen(f"{worker.url}/metrics", timeout=10).read().decode()
    found = re.search(rf"^{name} ([0-9.e+]+)$", text, re.MULTILINE)
    assert found, f"{name} not in /metrics"
    return float(found.group(1))


def open_roll_up(broker: str, worker: WorkerProcess) -> tuple[dict, int]:
    """The cards of one ward × day on several partitions, until their roll-up is OPEN and announced once."""
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
    return flag, total


def resolve_roll_up(broker: str, worker: WorkerProcess, flag: dict, total: int) -> None:
    """Every late sync arrives: ONE resolution of the whole roll-up, on the alerts and the API."""
    def announced() -> list[tuple[str, str]]:
        return sorted({(a["flag_id"], a["status"]) for a in alerts(broker) if a["type"] == "SYNC_MISSING"})

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
