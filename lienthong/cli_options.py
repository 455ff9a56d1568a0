"""Options and settings shared by the ``lienthong`` commands (kept apart so command
groups in their own modules can use them without importing the whole CLI)."""

from __future__ import annotations

import click

from hubbase.settings import Settings


def settings_of(ctx: click.Context) -> Settings:
    """The run's settings: the group's (with its options applied) or the environment's."""
    return ctx.obj if isinstance(ctx.obj, Settings) else Settings.from_env()


def _broker_after_command(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    """``lienthong import FILE --broker X`` means the same as ``lienthong --broker X import FILE``."""
    if value:
        ctx.obj = settings_of(ctx).with_(broker=value)


#: ``--broker`` accepted after the subcommand too, on every command that talks to a broker.
broker_option = click.option(
    "--broker", "broker_", default=None, expose_value=False, callback=_broker_after_command,
    help="Kafka bootstrap servers (overrides LIENTHONG_BROKER and a --broker before the command).",
)
