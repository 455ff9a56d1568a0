"""A replay of a simulated city gives back the same figures and the same flags."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from connectors.csv_import import parse_time
from connectors.simulator import generate_city
from hubbase.broker import EmbeddedBroker
from tests.support import WorkerProcess, hub_env, run_cli, wait_for
from tests.truth import expected_kpis

pytestmark = pytest.mark.integration

START = "2024-06-01T00:00:00+07:00"
WEEK = ("--seed", "11", "--days", "7", "--events", "4000", "--rate", "4000", "--start", START, "--no-progress")
#: Everything the independent oracle knows; flags_open and dead letters are not its business.
NOT_FROM_TRUTH = {"flags_open", "events_dead_lettered", "as_of"}


def replay_week(tmp_path: Path) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
    """Publish the simulated week to a fresh broker; return a worker's KPIs and flags."""
    with EmbeddedBroker(partitions=8) as broker:
        result = run_cli("simulate", *WEEK, env=hub_env(broker.bootstrap, tmp_path))
        assert result.returncode == 0, result.stderr[-2000:]
        worker = WorkerProcess(broker.bootstrap, tmp_path)
        # chain SLAs are weeks in the city; shorten them so one week exercises CHAIN_STALLED
        worker.env.update(LIENTHONG_SLA_BIRTH_CHAIN="48", LIENTHONG_SLA_DEATH_CHAIN="48")
        worker.start()
        try:
            truth = expected_kpis(generate_city(11, parse_time(START, "start"), 7, 4000))
            expected = {k: v for k, v in truth.items() if k not in NOT_FROM_TRUTH}
            kpis = wait_for(
                lambda: (k := worker.kpis()) and {n: k[n] for n in expected} == expected and k,
                180, what="the worker to reach the truth",
            )
            flags = worker.flags()
            return kpis, sorted(
                (f["type"], f["subject"], f["status"], f["opened_at"], f["resolved_at"], f["ward_code"])
                for f in flags if f["type"] != "AGENCY_SILENT"  # the one wall-clock rule
            )
        finally:
            worker.kill()


def test_a_simulated_week_replayed_twice_gives_the_same_figures_and_flags(tmp_path):
    first_kpis, first_flags = replay_week(tmp_path / "first")
    second_kpis, second_flags = replay_week(tmp_path / "second")
    assert first_flags, "a simulated week raises flags"
    assert {t for t, *_ in first_flags} >= {"SYNC_MISSING", "CHAIN_STALLED", "PROCEDURE_OVERDUE", "DUPLICATE_EVENT"}
    assert first_flags == second_flags
    first_kpis.pop("as_of", None)
    second_kpis.pop("as_of", None)
    assert first_kpis == second_kpis
