"""The command line as a user types it."""

from __future__ import annotations

import re
from pathlib import Path


def test_every_command_that_talks_to_a_broker_takes_broker_after_it_too() -> None:
    from lienthong.cli import main

    for name in ("worker", "import", "simulate", "gateway", "outbox", "status", "demo"):
        options = {opt for param in main.commands[name].params for opt in getattr(param, "opts", [])}
        assert "--broker" in options, name


def _simulate_csv(tmp_path: Path, *extra: str) -> tuple[str, bytes]:
    from click.testing import CliRunner

    from lienthong.cli import main

    out = tmp_path / f"run-{len(list(tmp_path.iterdir()))}"
    result = CliRunner().invoke(main, ["simulate", "--events", "50", "--csv", str(out), *extra])
    assert result.exit_code == 0, result.output
    return result.output, (out / "police.csv").read_bytes()


def test_simulate_draws_a_fresh_seed_each_run_and_prints_it(tmp_path: Path) -> None:
    first_out, first = _simulate_csv(tmp_path)
    second_out, second = _simulate_csv(tmp_path)
    seeds = [re.search(r"seed (\d+)", out).group(1) for out in (first_out, second_out)]  # type: ignore[union-attr]
    assert seeds[0] != seeds[1]
    assert first != second


def test_simulate_with_a_seed_repeats_that_traffic_and_says_which(tmp_path: Path) -> None:
    first_out, first = _simulate_csv(tmp_path, "--seed", "42")
    _, again = _simulate_csv(tmp_path, "--seed", "42")
    assert "seed 42" in first_out
    assert first == again


def test_deadletter_list_against_an_unreachable_broker_is_one_clear_error() -> None:
    from click.testing import CliRunner

    from hubbase.broker import free_port
    from lienthong.cli import main

    result = CliRunner().invoke(main, ["deadletter", "list", "--broker", f"127.0.0.1:{free_port()}"])
    assert result.exit_code == 1
    assert "Error: broker 127.0.0.1:" in result.output and "Traceback" not in result.output


def test_status_shows_a_rate_with_no_denominator_as_a_dash() -> None:
    from lienthong.status import _fmt

    assert _fmt("procedures_on_time_rate", None) == "—"
    assert _fmt("procedures_on_time_rate", 0.5) == "50.0%"
