"""SASL and TLS for every Kafka client of the hub, from ``LIENTHONG_KAFKA_*`` settings.

The hub talks to Kafka through three client libraries (kafka-python in the
connectors and admin tools, aiokafka for the worker's side readers, Faust for the
worker itself); each spells the same settings differently. This module is the one
place that turns the hub's settings into each library's keyword arguments, so a
broker that requires SASL/SCRAM over TLS is reached by every client alike.

Settings: ``LIENTHONG_KAFKA_SECURITY_PROTOCOL`` (default: derived: ``SASL_SSL``
with a mechanism and a CA file, ``SASL_PLAINTEXT`` with a mechanism, ``SSL`` with a
CA file, else ``PLAINTEXT``), ``LIENTHONG_KAFKA_SASL_MECHANISM`` (e.g.
``SCRAM-SHA-512``), ``LIENTHONG_KAFKA_SASL_USERNAME``, ``LIENTHONG_KAFKA_SASL_PASSWORD``,
``LIENTHONG_KAFKA_SSL_CAFILE``, ``LIENTHONG_KAFKA_SSL_CERTFILE``, ``LIENTHONG_KAFKA_SSL_KEYFILE``.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True)
class KafkaSecurity:
    protocol: str = "PLAINTEXT"
    sasl_mechanism: str = ""
    sasl_username: str = ""
    sasl_password: str = ""
    ssl_cafile: str = ""
    ssl_certfile: str = ""
    ssl_keyfile: str = ""

    def __repr__(self) -> str:  # never show the password
        return (f"KafkaSecurity({self.protocol}, mechanism={self.sasl_mechanism or None}, "
                f"user={self.sasl_username or None}, password={'***' if self.sasl_password else None})")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> KafkaSecurity:
        env = os.environ if environ is None else environ

        def get(name: str) -> str:
            return env.get(f"LIENTHONG_KAFKA_{name}", "").strip()

        mechanism = get("SASL_MECHANISM").upper()
        cafile = get("SSL_CAFILE")
        protocol = get("SECURITY_PROTOCOL").upper() or (
            ("SASL_SSL" if cafile else "SASL_PLAINTEXT") if mechanism else ("SSL" if cafile else "PLAINTEXT")
        )
        if protocol not in PROTOCOLS:
            raise ValueError(f"LIENTHONG_KAFKA_SECURITY_PROTOCOL must be one of {', '.join(PROTOCOLS)}, not {protocol!r}")
        if protocol.startswith("SASL"):
            if mechanism not in MECHANISMS:
                raise ValueError(f"LIENTHONG_KAFKA_SASL_MECHANISM must be one of {', '.join(MECHANISMS)} with {protocol}")
            if not get("SASL_USERNAME") or not get("SASL_PASSWORD"):
                raise ValueError(f"{protocol} needs LIENTHONG_KAFKA_SASL_USERNAME and LIENTHONG_KAFKA_SASL_PASSWORD")
        return cls(protocol, mechanism, get("SASL_USERNAME"), get("SASL_PASSWORD"), cafile,
                   get("SSL_CERTFILE"), get("SSL_KEYFILE"))

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL")

    @property
    def tls(self) -> bool:
        return self.protocol.endswith("SSL")

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        context = ssl.create_default_context(cafile=self.ssl_cafile or None)
        if self.ssl_certfile:
            context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile or None)
        return context


def _protocol_and_sasl(s: KafkaSecurity) -> dict[str, Any]:
    """What kafka-python and aiokafka name alike: the protocol and the SASL login."""
    config: dict[str, Any] = {"security_protocol": s.protocol}
    if s.sasl:
        config.update(sasl_mechanism=s.sasl_mechanism, sasl_plain_username=s.sasl_username,
                      sasl_plain_password=s.sasl_password)
    return config


def kafka_python_config(security: KafkaSecurity | None = None) -> dict[str, Any]:
    """Keyword arguments for kafka-python's ``KafkaProducer``/``KafkaConsumer``/``KafkaAdminClient``."""
    s = security or KafkaSecurity.from_env()
    config = _protocol_and_sasl(s)
    if s.tls:
        config.update({k: v for k, v in (("ssl_cafile", s.ssl_cafile), ("ssl_certfile", s.ssl_certfile),
                                         ("ssl_keyfile", s.ssl_keyfile)) if v})
    return config


def aiokafka_config(security: KafkaSecurity | None = None) -> dict[str, Any]:
    """Keyword arguments for aiokafka's ``AIOKafkaConsumer``/``AIOKafkaProducer``."""
    s = security or KafkaSecurity.from_env()
    config = _protocol_and_sasl(s)
    if s.tls:
        config["ssl_context"] = s.ssl_context()
    return config


async def side_reader(bootstrap: str, *, fetch_wait_ms: int, fetch_bytes: int) -> AIOKafkaConsumer:
    """A started aiokafka consumer outside any group, for partitions it is assigned by hand.

    The worker's side reads (a changelog's tail or end, a partition restored by
    hand) must not join the worker's group nor commit offsets; they differ only
    in how long a fetch waits and how much it may return.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=fetch_wait_ms,
        max_partition_fetch_bytes=fetch_bytes,
        fetch_max_bytes=fetch_bytes,
        **aiokafka_config(),
    )
    await consumer.start()
    return consumer


def faust_credentials(security: KafkaSecurity | None = None) -> Any:
    """``broker_credentials`` for ``faust.App`` (``None`` for plaintext)."""
    import faust

    s = security or KafkaSecurity.from_env()
    if s.sasl:
        return faust.SASLCredentials(username=s.sasl_username, password=s.sasl_password,
                                     ssl_context=s.ssl_context(), mechanism=s.sasl_mechanism)
    if s.tls:
        context = s.ssl_context()
        assert context is not None
        return faust.SSLCredentials(context)
    return None
