"""``lienthong demo``: the whole hub on one machine, stopped cleanly by Ctrl-C.

Each part runs as its own process (as it would in production), so the demo also
shows that they only talk through Kafka and HTTP.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

import click

from lienthong.broker import EmbeddedBroker
from lienthong.settings import Settings
from lienthong.topics import ensure_topics


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


def run_demo(settings: Settings, rate: float = 300.0) -> None:
    embedded = None if settings.broker else EmbeddedBroker().start()
    bootstrap = settings.broker or (embedded.bootstrap if embedded else "")
    ensure_topics(bootstrap, settings.partitions)
    env = dict(os.environ, LIENTHONG_BROKER=bootstrap, LIENTHONG_WEB_PORT=str(settings.web_port),
               LIENTHONG_GATEWAY_PORT=str(settings.gateway_port), LIENTHONG_DATA_DIR=str(settings.data_dir))
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
        base = f"http://{settings.web_host}:{settings.web_port}"
        if not _wait_http(f"{base}/healthz", 90):
            raise click.ClickException("the worker did not come up")
        children.append(
            subprocess.Popen(cli + ["simulate", "--rate", str(rate), "--days", "30"], env=env)
        )
        click.echo("")
        click.echo(f"  lienthong demo is running on broker {bootstrap}")
        click.echo(f"  dashboard:  {base}/")
        click.echo(f"  KPIs:       {base}/api/kpis      flags: {base}/api/flags")
        click.echo(f"  metrics:    {base}/metrics")
        click.echo(f"  gateway:    http://127.0.0.1:{settings.gateway_port}/v1/events")
        click.echo("  Ctrl-C stops everything.")
        click.echo("")
        while not stopping["now"]:
            for child in children[:2]:
                if child.poll() is not None:
                    raise click.ClickException(f"{' '.join(child.args[3:5])} exited with {child.returncode}")
            time.sleep(0.5)
    finally:
        for child in reversed(children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in reversed(children):
            try:
                child.wait(20)
            except subprocess.TimeoutExpired:
                child.kill()
        if embedded is not None:
            embedded.stop()
        click.echo("demo stopped")
