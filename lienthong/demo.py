"""``lienthong demo``: the whole hub on one machine, stopped cleanly by Ctrl-C.

Each part runs as its own process (as it would in production), so the demo also
shows that they only talk through Kafka and HTTP.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import click

from hubbase.broker import EmbeddedBroker, stop_process
from hubbase.settings import Settings
from hubbase.topic_admin import ensure_topics
from schemas.vocabulary import AGENCIES


def _wait_http(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.3)
    return False


def demo_credentials(settings: Settings) -> Path:
    """Per-agency gateway tokens for this demo, kept in the data dir (mode 0600)."""
    path = settings.data_dir / "gateway-credentials.json"
    if not path.exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        tokens = {agency: {"token": secrets.token_urlsafe(24)} for agency in AGENCIES}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(tokens, fh, indent=2)
    return path


def demo_secrets(settings: Settings) -> dict[str, str]:
    """The demo's own pseudonym key and agency signing keys, generated once in the data dir.

    Only the demo generates secrets; every service it starts is given them as a
    real deployment would give them (``LIENTHONG_PSEUDONYM_KEY_FILE``,
    ``LIENTHONG_SIGNING_KEYS``), unless the operator configured their own.
    """
    from schemas.signing import generate_keyring_file

    env: dict[str, str] = {}
    if not settings.pseudonym_key and not settings.pseudonym_key_file:
        settings.resolved_pseudonym_key()  # generates data_dir/pseudonym.key (0600) once
        env["LIENTHONG_PSEUDONYM_KEY_FILE"] = str(settings.data_dir / "pseudonym.key")
    if not settings.signing_keys:
        env["LIENTHONG_SIGNING_KEYS"] = str(generate_keyring_file(settings.data_dir / "signing-keys.json"))
    return env


def run_demo(settings: Settings, rate: float = 300.0) -> None:
    credentials = demo_credentials(settings)
    police_token = json.loads(credentials.read_text())["POLICE"]["token"]
    embedded = None if settings.broker else EmbeddedBroker(partitions=settings.partitions).start()
    if embedded is not None:
        # The embedded broker keeps nothing between runs: partition databases of an earlier
        # run (LIENTHONG_STATE_STORE=disk) belong to a log that no longer exists.
        shutil.rmtree(settings.data_dir / "state", ignore_errors=True)
    bootstrap = settings.broker or (embedded.bootstrap if embedded else "")
    ensure_topics(bootstrap, settings.partitions)
    env = dict(os.environ, LIENTHONG_BROKER=bootstrap, LIENTHONG_WEB_PORT=str(settings.web_port),
               LIENTHONG_GATEWAY_PORT=str(settings.gateway_port), LIENTHONG_DATA_DIR=str(settings.data_dir),
               LIENTHONG_GATEWAY_CREDENTIALS=str(credentials), **demo_secrets(settings))
    cli = [sys.executable, "-m", "lienthong"]
    children: list[subprocess.Popen[bytes]] = []
    stopping = {"now": False}

    def _stop(*_: object) -> None:
        stopping["now"] = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        children.append(subprocess.Popen(cli + ["worker", "--name", "demo-worker"], env=env))
        children.append(subprocess.Popen(cli + ["gateway"], env=env))
        names = {children[0].pid: "worker", children[1].pid: "gateway"}
        base = f"http://{settings.web_host}:{settings.web_port}"
        if not _wait_http(f"{base}/healthz", 90):
            raise click.ClickException("the worker did not come up")
        children.append(
            subprocess.Popen(cli + ["simulate", "--rate", str(rate), "--days", "30", "--no-progress"], env=env)
        )
        click.echo("")
        click.echo(f"  lienthong demo is running on broker {bootstrap}")
        click.echo(f"  dashboard:  {base}/")
        click.echo(f"  KPIs:       {base}/api/kpis      flags: {base}/api/flags")
        click.echo(f"  metrics:    {base}/metrics")
        click.echo(f"  gateway:    http://127.0.0.1:{settings.gateway_port}/v1/events  (tokens: {credentials})")
        click.echo(
            f"  try:        curl -s -XPOST -H 'Authorization: Bearer {police_token}' "
            f"-d '{{\"event_type\":\"IdCardIssued\",\"occurred_at\":\"2024-06-01T08:00:00+07:00\","
            f"\"ward_code\":\"26506\",\"citizen_id\":\"079200000001\",\"card_kind\":\"CCCD_CHIP\"}}' "
            f"http://127.0.0.1:{settings.gateway_port}/v1/events"
        )
        click.echo("  Ctrl-C stops everything.")
        click.echo("")
        while not stopping["now"]:
            for child in children[:2]:
                if child.poll() is not None:
                    raise click.ClickException(f"{names[child.pid]} exited with {child.returncode}")
            time.sleep(0.5)
    finally:
        for child in reversed(children):  # signal all first, so they stop in parallel
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in reversed(children):
            stop_process(child, 20)
        if embedded is not None:
            embedded.stop()
        click.echo("demo stopped")
