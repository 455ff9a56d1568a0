"""``lienthong demo`` generates its own secrets, and its traffic is signed, verified and counted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from hubbase.broker import free_port
from tests.support import ROOT, get_json, wait_for

pytestmark = pytest.mark.integration


def test_the_demo_signs_and_verifies_with_keys_it_generates(tmp_path):
    web, gateway = free_port(), free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("LIENTHONG_PSEUDONYM_KEY", "LIENTHONG_SIGNING_KEYS", "LIENTHONG_BROKER")}
    env.update(LIENTHONG_DATA_DIR=str(tmp_path), LIENTHONG_REBALANCE_TIMEOUT="2", PYTHONUNBUFFERED="1")
    log_path = tmp_path / "demo.log"
    with log_path.open("wb") as log:
        demo = subprocess.Popen([sys.executable, "-m", "lienthong", "demo", "--rate", "100", "--web-port", str(web),
                                 "--gateway-port", str(gateway)], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        kpis = wait_for(lambda: (k := get_json(f"http://127.0.0.1:{web}/api/kpis")["kpis"])["events_total"] > 200 and k,
                        180, what="the demo's traffic counted")
        assert kpis["events_dead_lettered"] == 0
        assert get_json(f"http://127.0.0.1:{web}/healthz")["signature_verification"] == "on"
        assert (tmp_path / "signing-keys.json").stat().st_mode & 0o077 == 0
        assert (tmp_path / "pseudonym.key").exists()
    finally:
        demo.send_signal(signal.SIGINT)
        assert demo.wait(60) == 0, log_path.read_text()[-3000:]
    logged = log_path.read_text()
    assert (tmp_path / "pseudonym.key").read_text().strip() not in logged
