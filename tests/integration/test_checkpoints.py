"""Checkpoints (streams/checkpoint.py) on real workers: a worker without a local store restores
from the newest complete checkpoint, and a worker killed while writing one is replaced exactly."""

from __future__ import annotations

import re
import urllib.request

import pytest

from tests.integration.test_exactness import (
    ON_DISK,
    city_events,
    publish,
    restore_figures,
    truth,
    wait_committed,
    wait_exact,
    wait_flag_counts_agree,
)
from tests.integration.test_liveness import exit_code, log_lines
from tests.support import WorkerProcess, wait_for

#: Checkpoints early and often, in many small parts (every delta of 25 events is ~10 KB).
CHECKPOINTS = {**ON_DISK, "LIENTHONG_CHECKPOINT_BYTES": "20000", "LIENTHONG_MAX_RECORD_BYTES": "65536"}


def checkpoints_written(worker: WorkerProcess) -> int:
    text = urllib.request.urlopen(f"{worker.url}/metrics", timeout=10).read().decode()
    found = re.search(r"^lienthong_checkpoints_written ([0-9.e+]+)", text, re.MULTILINE)
    assert found, "lienthong_checkpoints_written not in /metrics"
    return int(float(found.group(1)))


def test_a_worker_without_a_local_store_restores_from_the_checkpoints_and_the_deltas_after_them(broker, workers):
    events = city_events(8_000, seed=11, duplicates=200)
    keeper = workers(name="keeper", store="rocksdb://", **CHECKPOINTS)
    publish(broker, events[:6000], batch_size=25)
    wait_exact(keeper, truth(events[:6000]))
    wait_for(lambda: checkpoints_written(keeper) >= 8 or None, 120, what="a checkpoint of every partition")
    wait_committed(broker)
    deltas_written = keeper.get("/healthz")["groups"]
    keeper.kill()
    newcomer = workers(name="newcomer", store="rocksdb://", **CHECKPOINTS)  # another name: no local store
    publish(broker, events[6000:], batch_size=25)
    wait_exact(newcomer, truth(events))
    wait_flag_counts_agree(newcomer)
    figures = restore_figures(newcomer)
    assert figures["checkpoint"] == 8 and figures["changelog"] == 0 and figures["local"] == 0
    # every checkpoint covers at least one delta of its partition, which the restore did not read back
    assert figures["deltas"] <= deltas_written - 8


@pytest.mark.parametrize("fault", ["exit_during_checkpoint@3", "exit_after_checkpoint@2"])
def test_a_worker_killed_while_writing_a_checkpoint_is_replaced_exactly(broker, workers, fault):
    """Killed between a checkpoint's parts (no marker: no restore reads it), or after its marker
    and before its tombstones: a worker without the local store still ends exact."""
    events = city_events(8_000, seed=12, duplicates=200)
    writer = workers(name="writer", store="rocksdb://", LIENTHONG_FAULT=fault, **CHECKPOINTS)
    publish(broker, events[:6000], batch_size=25)
    assert exit_code(writer, 120) == 1
    assert any("fault_injected" in line for line in log_lines(writer))
    stranger = workers(name="stranger", store="rocksdb://", **CHECKPOINTS)
    publish(broker, events[6000:], batch_size=25)
    wait_exact(stranger, truth(events))
    wait_flag_counts_agree(stranger)
    assert sum(restore_figures(stranger)[source] for source in ("checkpoint", "changelog")) == 8
