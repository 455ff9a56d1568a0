"""SASL/TLS settings (``LIENTHONG_KAFKA_*``) reach the config of every Kafka client the hub makes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hubbase.kafka_security import (
    KafkaSecurity,
    aiokafka_config,
    faust_credentials,
    kafka_python_config,
)
from hubbase.settings import Settings

SCRAM = {"LIENTHONG_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "LIENTHONG_KAFKA_SASL_USERNAME": "worker",
         "LIENTHONG_KAFKA_SASL_PASSWORD": "worker-password-0123"}


@pytest.fixture
def scram(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SCRAM.items():
        monkeypatch.setenv(name, value)


def test_no_settings_means_plaintext() -> None:
    assert KafkaSecurity.from_env({}).protocol == "PLAINTEXT"
    assert kafka_python_config(KafkaSecurity.from_env({})) == {"security_protocol": "PLAINTEXT"}


def test_a_sasl_mechanism_means_sasl_and_a_ca_file_means_tls() -> None:
    assert KafkaSecurity.from_env(SCRAM).protocol == "SASL_PLAINTEXT"
    assert KafkaSecurity.from_env({**SCRAM, "LIENTHONG_KAFKA_SSL_CAFILE": "/ca.pem"}).protocol == "SASL_SSL"
    assert KafkaSecurity.from_env({"LIENTHONG_KAFKA_SSL_CAFILE": "/ca.pem"}).protocol == "SSL"


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"LIENTHONG_KAFKA_SECURITY_PROTOCOL": "SASL_TLS"}, "must be one of PLAINTEXT"),
        ({"LIENTHONG_KAFKA_SASL_MECHANISM": "GSSAPI", "LIENTHONG_KAFKA_SASL_USERNAME": "u",
          "LIENTHONG_KAFKA_SASL_PASSWORD": "p"}, "SASL_MECHANISM must be one of"),
        ({"LIENTHONG_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512"}, "needs LIENTHONG_KAFKA_SASL_USERNAME"),
    ],
)
def test_incomplete_settings_are_refused_naming_the_setting(env: dict[str, str], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        KafkaSecurity.from_env(env)


def test_the_password_is_never_shown() -> None:
    assert "worker-password-0123" not in repr(KafkaSecurity.from_env(SCRAM))


def test_kafka_python_and_aiokafka_get_the_same_scram_settings(scram: None) -> None:
    expected = {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512",
                "sasl_plain_username": "worker", "sasl_plain_password": "worker-password-0123"}
    assert kafka_python_config() == expected
    assert aiokafka_config() == expected


def test_the_aiokafka_consumer_is_configured_for_scram(scram: None) -> None:
    import asyncio

    from aiokafka import AIOKafkaConsumer

    async def make() -> Any:
        return AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1", **aiokafka_config())

    consumer = asyncio.run(make())
    assert (consumer._client._security_protocol, consumer._client._sasl_mechanism) == ("SASL_PLAINTEXT", "SCRAM-SHA-512")


class Recorder:
    """Stands in for a kafka-python client class: records its keyword arguments, connects nowhere."""

    made: list[dict[str, Any]] = []

    def __init__(self, **config: Any) -> None:
        Recorder.made.append(config)

    def list_topics(self) -> list[str]:
        return []

    def create_topics(self, topics: Any) -> None:
        pass

    def close(self) -> None:
        pass


def test_the_connector_producer_and_the_topic_admin_get_the_settings(scram: None, monkeypatch: pytest.MonkeyPatch) -> None:
    import connectors.sdk
    import hubbase.topic_admin

    Recorder.made = []
    monkeypatch.setattr(connectors.sdk, "KafkaProducer", Recorder)
    monkeypatch.setattr(hubbase.topic_admin, "KafkaAdminClient", Recorder)
    connectors.sdk.Publisher("127.0.0.1:1", connector="test")
    hubbase.topic_admin.ensure_topics("127.0.0.1:1", 8)
    assert len(Recorder.made) == 2
    for config in Recorder.made:
        assert config["sasl_mechanism"] == "SCRAM-SHA-512" and config["sasl_plain_username"] == "worker"


def test_the_faust_app_gets_sasl_credentials(scram: None, tmp_path: Path) -> None:
    from streams.app import Hub

    hub = Hub(Settings(data_dir=tmp_path, store="memory://", pseudonym_key="k" * 32), "127.0.0.1:1", "w")
    credentials = hub.app.conf.broker_credentials
    assert isinstance(credentials, type(faust_credentials())) and credentials.username == "worker"
    assert credentials.mechanism.value == "SCRAM-SHA-512" and credentials.protocol.value == "SASL_PLAINTEXT"


CLIENTS = {"KafkaProducer", "KafkaConsumer", "KafkaAdminClient", "AIOKafkaConsumer", "AIOKafkaProducer", "App"}
SECURED_BY = {"kafka_python_config", "aiokafka_config"}


def test_every_kafka_client_the_hub_makes_is_given_the_security_settings() -> None:
    """A new client added without them would reach a SASL broker as nobody: caught here, by reading the code."""
    import ast

    root = Path(__file__).resolve().parents[2]
    unsecured = []
    for package in ("lienthong", "connectors", "streams"):
        for path in (root / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not isinstance(node, ast.Call):
                    continue
                name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                if name not in CLIENTS or (name == "App" and "faust" not in ast.unparse(node.func)):
                    continue
                spread = {ast.unparse(k.value.func) for k in node.keywords
                          if k.arg is None and isinstance(k.value, ast.Call)}
                if not spread & SECURED_BY and "broker_credentials" not in {k.arg for k in node.keywords}:
                    unsecured.append(f"{path.relative_to(root)}:{node.lineno} {name}")
    assert not unsecured, unsecured
