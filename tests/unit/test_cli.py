"""The command line as a user types it."""

from __future__ import annotations


def test_every_command_that_talks_to_a_broker_takes_broker_after_it_too() -> None:
    from lienthong.cli import main

    for name in ("worker", "import", "simulate", "gateway", "outbox", "status", "demo"):
        options = {opt for param in main.commands[name].params for opt in getattr(param, "opts", [])}
        assert "--broker" in options, name
