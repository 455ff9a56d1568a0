"""``lienthong status`` against a live broker and worker, and without a worker."""

from __future__ import annotations

import re

import pytest

from hubbase.broker import free_port
from tests.integration.test_web_api import import_id_cards, send_garbage
from tests.support import hub_env, run_cli, wait_for

pytestmark = pytest.mark.integration


def test_status_shows_topics_lag_kpis_and_open_flags(broker, workers, tmp_path):
    worker = workers()
    import_id_cards(broker, tmp_path, 60)
    send_garbage(broker, 2)
    wait_for(lambda: worker.kpis()["events_dead_lettered"] == 2 and worker.kpis()["id_cards_issued"] == 60,
             60, what="the import and the garbage")
    result = run_cli("status", "--url", worker.url, env=hub_env(broker, tmp_path))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"{broker}: reachable, 12/12 hub topics" in out
    assert "signature verification: on" in out
    assert re.search(r"lienthong\.identity\s+8 partitions", out)
    assert re.search(r"^Consumer lag: \d+ messages", out, re.MULTILINE)
    assert re.search(r"ID cards issued\s+60$", out, re.MULTILINE)
    assert re.search(r"CONTRACT_VIOLATION\s+\d+", out)


def test_status_fails_clearly_when_no_worker_answers(broker, tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    result = run_cli("status", "--url", url, env=hub_env(broker, tmp_path))
    assert result.returncode == 1
    assert "UNREACHABLE" in result.stderr and "no worker answered" in result.stderr
