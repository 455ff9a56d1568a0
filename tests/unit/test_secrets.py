"""Services refuse to start without their secrets, and never show them."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from hubbase.settings import MissingSecret, Settings
from lienthong.cli import main
from tests.support import TEST_SIGNING_KEYS

NO_BROKER = "127.0.0.1:1"  # the checks come before any connection


def run(args: list[str], **env: str) -> tuple[int, str]:
    base = {"LIENTHONG_PSEUDONYM_KEY": "", "LIENTHONG_PSEUDONYM_KEY_FILE": "",
            "LIENTHONG_SIGNING_KEYS": json.dumps(TEST_SIGNING_KEYS), "LIENTHONG_BROKER": NO_BROKER}
    result = CliRunner().invoke(main, args, env={**base, **env})
    return result.exit_code, result.output


@pytest.mark.parametrize(
    "args",
    [
        ["worker"],
        ["gateway", "--credentials", "-"],
        ["import", "README.md", "--agency", "POLICE"],
        ["outbox", "--dsn", "postgresql://nowhere/none", "--agency", "POLICE"],
        ["simulate", "--events", "10"],
    ],
    ids=["worker", "gateway", "import", "outbox", "simulate"],
)
def test_a_service_without_the_pseudonym_key_refuses_to_start_naming_the_setting(args: list[str]) -> None:
    env = {"LIENTHONG_GATEWAY_CREDENTIALS": json.dumps({"POLICE": {"token": "police-token-0123456789"}})}
    if args[0] == "gateway":
        args = ["gateway"]
    code, output = run(args, **env)
    assert code == 2, output
    assert "LIENTHONG_PSEUDONYM_KEY" in output and "only `lienthong demo` generates one" in output


def test_a_connector_without_its_agencys_signing_key_refuses_to_start() -> None:
    keys = {k: v for k, v in TEST_SIGNING_KEYS.items() if v["agency"] != "POLICE"}
    code, output = run(["import", "README.md", "--agency", "POLICE"], LIENTHONG_PSEUDONYM_KEY="k" * 32,
                       LIENTHONG_SIGNING_KEYS=json.dumps(keys))
    assert code == 2 and "no signing key for POLICE" in output


def test_the_pseudonym_key_can_come_from_a_file(tmp_path) -> None:
    path = tmp_path / "pseudonym.key"
    path.write_text("f" * 64 + "\n")
    assert Settings(pseudonym_key_file=str(path)).require_pseudonym_key("test") == b"f" * 64
    with pytest.raises(MissingSecret, match="cannot read LIENTHONG_PSEUDONYM_KEY_FILE"):
        Settings(pseudonym_key_file=str(tmp_path / "missing")).require_pseudonym_key("test")


def test_settings_never_show_their_secrets() -> None:
    settings = Settings(pseudonym_key="secret-pseudonym-key-0123", signing_keys='{"x": 1}', gateway_credentials="{}")
    assert "secret-pseudonym-key-0123" not in repr(settings) and '{"x": 1}' not in repr(settings)


def test_the_demo_generates_its_secrets_in_the_data_dir_and_hands_them_over(tmp_path) -> None:
    from lienthong.demo import demo_secrets

    env = demo_secrets(Settings(data_dir=tmp_path))
    assert Settings(**{"pseudonym_key_file": env["LIENTHONG_PSEUDONYM_KEY_FILE"]}).require_pseudonym_key("t")
    assert Settings(signing_keys=env["LIENTHONG_SIGNING_KEYS"]).keyring().signing_key("LABOUR")
    assert (tmp_path / "pseudonym.key").stat().st_mode & 0o077 == 0
