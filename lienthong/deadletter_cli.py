"""``lienthong deadletter list | show | replay``: the operator's side of the dead-letter topic.

Thin click commands over :mod:`lienthong.deadletters` (reading, decoding, replaying).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from lienthong.cli_options import broker_option, settings_of
from schemas.vocabulary import AGENCIES


@click.group()
def deadletter() -> None:
    """Dead letters an operator can act on: list, show one, replay once fixed.

    Every message the hub refused is in lienthong.deadletter, unchanged, with the
    reason, the field at fault and where it came from. Read it here (nothing is
    committed or consumed), then replay chosen dead letters, or a corrected file
    of them, to their source topic. A replayed event keeps its event_id, so it
    counts once however often it is replayed.
    """


def _selection(agency: str | None, reason: str | None, field: str | None,
               since: str | None, until: str | None) -> Any:
    from lienthong.deadletters import Selection, time_option
    from schemas.errors import ContractError

    try:
        return Selection(agency, reason, field, time_option(since, "since"), time_option(until, "until"))
    except ContractError as exc:
        raise click.BadParameter(exc.reason, param_hint=f"--{exc.field}") from None


def _needs_broker(ctx: click.Context, command: str) -> str:
    settings = settings_of(ctx)
    if not settings.broker:
        raise click.UsageError(f"deadletter {command} needs a running broker: set LIENTHONG_BROKER or --broker")
    return settings.broker


@contextmanager
def _broker_errors(bootstrap: str) -> Iterator[None]:
    """A broker that cannot be reached is one clear line, not a kafka-python traceback."""
    from kafka.errors import KafkaError

    try:
        yield
    except KafkaError as exc:
        raise click.ClickException(f"broker {bootstrap}: {type(exc).__name__}: {exc}") from None


def _selection_options(f: Any) -> Any:
    for option in reversed([
        click.option("--agency", type=click.Choice(AGENCIES), default=None, help="Only this agency's dead letters."),
        click.option("--reason", default=None, help="Only reasons containing this text (case-insensitive)."),
        click.option("--field", "field_", default=None, help="Only this field at fault (e.g. ward_code)."),
        click.option("--since", default=None, help="Dead-lettered at or after this ISO 8601 time (with Z or an offset)."),
        click.option("--until", default=None, help="Dead-lettered before this ISO 8601 time."),
    ]):
        f = option(f)
    return f


@deadletter.command("list")
@broker_option
@_selection_options
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per line (id, time, agency, source, field, reason, decoded event): "
                   "edit the events and give the file to `deadletter replay --file`.")
@click.pass_context
def deadletter_list(ctx: click.Context, agency: str | None, reason: str | None, field_: str | None,
                    since: str | None, until: str | None, as_json: bool) -> None:
    """List dead letters, oldest first, by agency, reason, field and time."""
    import json

    from lienthong.deadletters import read_all

    selection = _selection(agency, reason, field_, since, until)
    bootstrap = _needs_broker(ctx, "list")
    with _broker_errors(bootstrap):
        letters = [letter for letter in read_all(bootstrap) if selection.matches(letter)]
    for letter in letters:
        row = letter.summary()
        if as_json:
            click.echo(json.dumps(row, ensure_ascii=False))
        else:
            click.echo(f"{row['id']:>8}  {row['time']}  {row['agency'] or '?':<16} {row['source']:<32} "
                       f"{row['field']:<16} {row['reason']}")
    if not as_json:
        click.echo(f"{len(letters)} dead letter(s)", err=True)


@deadletter.command("show")
@broker_option
@click.argument("letter_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="The whole description as one JSON object.")
@click.pass_context
def deadletter_show(ctx: click.Context, letter_id: str, as_json: bool) -> None:
    """Show one dead letter (ID as `deadletter list` prints it: partition:offset), decoded where possible."""
    import json

    from lienthong.deadletters import describe, read_one

    bootstrap = _needs_broker(ctx, "show")
    try:
        with _broker_errors(bootstrap):
            body = describe(read_one(bootstrap, letter_id))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="ID") from None
    except KeyError:
        raise click.ClickException(f"no dead letter {letter_id}") from None
    if as_json:
        click.echo(json.dumps(body, ensure_ascii=False, indent=2))
        return
    for name in ("id", "time", "agency", "source", "field", "reason", "key", "size"):
        click.echo(f"{name + ':':<9} {body[name]}")
    for name, value in body["headers"].items():
        click.echo(f"header:   {name} = {value}")
    if body["event"] is not None:
        click.echo("decoded:  " + json.dumps(body["event"], ensure_ascii=False, indent=2).replace("\n", "\n          "))
    else:
        click.echo("not an event of any known schema: " + (body.get("text") or body.get("hex") or ""))


@deadletter.command("replay")
@broker_option
@click.argument("letter_ids", metavar="[ID]...", nargs=-1)
@_selection_options
@click.option("--file", "file_", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A corrected file: JSON lines as `deadletter list --json` writes them, events edited.")
@click.option("--all", "all_", is_flag=True, help="With no ID and no filter: replay every dead letter.")
@click.option("--dry-run", is_flag=True, help="Say what would be replayed; send nothing.")
@click.pass_context
def deadletter_replay(ctx: click.Context, letter_ids: tuple[str, ...], agency: str | None, reason: str | None,
                      field_: str | None, since: str | None, until: str | None, file_: Path | None,
                      all_: bool, dry_run: bool) -> None:
    """Send dead letters back to their source topic, with lineage headers.

    Chosen by ID, by the list filters, or from a corrected file (--file). Unchanged
    dead letters go back byte for byte to the partition they came from; corrected
    events are validated, pseudonymised and encoded like any agency's event. Each
    replayed message carries lienthong.replay.of/source/reason/at/corrected
    headers. An event keeps its event_id, so replaying twice counts it once. Exit
    code 1 if anything could not be replayed (each one is reported).
    """
    from lienthong.deadletters import corrected_lines, parse_id, read_all, replay
    from schemas.pseudonym import Pseudonymiser

    selection = _selection(agency, reason, field_, since, until)
    if not (letter_ids or file_ or all_ or not selection.empty):
        raise click.UsageError("say what to replay: IDs, a filter (--agency, --reason, ...), --file or --all")
    for letter_id in letter_ids:
        try:
            parse_id(letter_id)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="ID") from None
    settings = settings_of(ctx)
    bootstrap = _needs_broker(ctx, "replay")
    with _broker_errors(bootstrap):
        letters = [letter for letter in read_all(bootstrap) if selection.matches(letter)]
    corrected = None
    if file_ is not None:
        corrected = list(corrected_lines(file_.read_text(encoding="utf-8").splitlines()))
    elif letter_ids:
        wanted = set(letter_ids)
        letters = [letter for letter in letters if letter.id in wanted]
        missing = wanted - {letter.id for letter in letters}
        if missing:
            raise click.ClickException(f"no dead letter {', '.join(sorted(missing))}")
    with _broker_errors(bootstrap):
        report = replay(bootstrap, settings.partitions, letters, corrected=corrected,
                        pseudonymiser=Pseudonymiser(settings.resolved_pseudonym_key()),
                        keyring=settings.keyring(), dry_run=dry_run)
    for problem in report.problems:
        click.echo(problem, err=True)
    for done in report.replayed:
        click.echo(f"{'would replay' if dry_run else 'replayed'} {done.letter_id} -> {done.topic}/{done.partition}")
    click.echo(f"{len(report.replayed)} replayed, {len(report.problems)} refused" + (" (dry run)" if dry_run else ""))
    sys.exit(1 if report.problems else 0)
