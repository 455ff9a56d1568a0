"""``lienthong import`` as a new user runs it: odd files, options in any order, real broker."""

from __future__ import annotations

import random

import pytest

from tests.integration.test_walking_skeleton import write_id_cards
from tests.support import hub_env, run_cli, wait_for

pytestmark = pytest.mark.integration


def test_broker_given_after_the_subcommand_is_used(broker, workers, tmp_path):
    worker = workers()
    cards = tmp_path / "cards.csv"
    write_id_cards(cards, 12)
    env = hub_env(broker, tmp_path, LIENTHONG_BROKER="")  # only the option names the broker
    result = run_cli("import", str(cards), "--agency", "POLICE", "--no-progress", "--broker", broker, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "imported 12 events, 0 bad rows" in result.stdout
    wait_for(lambda: worker.kpis()["id_cards_issued"] == 12, 60, what="12 ID cards counted")


def test_a_byte_that_is_not_utf8_costs_its_row_only_and_no_traceback(broker, workers, tmp_path):
    worker = workers()
    cards = tmp_path / "cards.csv"
    write_id_cards(cards, 10)
    lines = cards.read_bytes().splitlines(keepends=True)
    lines[4] = lines[4].replace(b"CCCD_CHIP", b"CCCD_CHIP\xff").replace(b"CAN_CUOC", b"CAN_CUOC\xff")
    cards.write_bytes(b"".join(lines))
    result = run_cli("import", str(cards), "--agency", "POLICE", "--no-progress", env=hub_env(broker, tmp_path))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "line 5: card_kind: byte 0xFF" in result.stderr
    assert "imported 9 events, 1 bad rows" in result.stdout
    wait_for(lambda: worker.kpis()["id_cards_issued"] == 9, 60, what="the 9 good rows counted")


@pytest.mark.parametrize("content", [b"", b"event_type,occurred_at,ward_code\n", bytes(random.Random(15).randbytes(500))],
                         ids=["empty", "no-citizen-column", "random-bytes"])
def test_a_file_no_row_can_come_from_is_one_message_and_exit_1(broker, tmp_path, content):
    path = tmp_path / "odd.csv"
    path.write_bytes(content)
    result = run_cli("import", str(path), "--agency", "POLICE", "--no-progress", env=hub_env(broker, tmp_path))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "imported 0 events" in result.stdout
    assert result.stderr.strip().startswith("line ")
