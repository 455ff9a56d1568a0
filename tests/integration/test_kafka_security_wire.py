"""SASL settings reach the wire: the embedded broker sees the SCRAM handshake (and, unable to authenticate, refuses it)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from hubbase.kafka_security import KafkaSecurity, aiokafka_config
from schemas.topics import AUDIT

pytestmark = pytest.mark.integration


async def start_consumer(bootstrap: str, security: KafkaSecurity) -> str:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(AUDIT, bootstrap_servers=bootstrap, request_timeout_ms=5000, **aiokafka_config(security))
    try:
        await consumer.start()
        return "connected"
    except Exception as exc:  # noqa: BLE001 - the refusal is what the test reads
        return f"{type(exc).__name__}: {exc}"
    finally:
        await consumer.stop()


def test_plaintext_settings_connect_and_scram_settings_reach_the_broker_as_a_sasl_handshake(broker, caplog):
    assert asyncio.run(start_consumer(broker, KafkaSecurity.from_env({}))) == "connected"
    scram = KafkaSecurity.from_env({"LIENTHONG_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
                                    "LIENTHONG_KAFKA_SASL_USERNAME": "police", "LIENTHONG_KAFKA_SASL_PASSWORD": "pw"})
    with caplog.at_level(logging.ERROR, logger="aiokafka"):
        refused = asyncio.run(start_consumer(broker, scram))
    assert refused.startswith("KafkaConnectionError")
    assert "UnsupportedSaslMechanismError" in caplog.text  # the broker answered our SCRAM handshake
