"""Every setting of the hub, read once from ``LIENTHONG_*`` environment variables.

One module so that an operator can find every knob in one place; the CLI only
overrides what a flag names explicitly.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from schemas.signing import Keyring


def _env(name: str, default: str) -> str:
    return os.environ.get(f"LIENTHONG_{name}", default)


def _sla_from_env() -> dict[str, float]:
    """``LIENTHONG_SLA_<NAME>=<hours>`` overrides; names and defaults live in ``streams/sla.py``."""
    prefix = "LIENTHONG_SLA_"
    return {k[len(prefix):].upper(): float(v) for k, v in os.environ.items() if k.startswith(prefix) and v.strip()}


def _flag(value: str, name: str) -> bool:
    text = value.strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"LIENTHONG_{name} must be true or false, not {value!r}")


class MissingSecret(RuntimeError):
    """A service was started without a secret it must be given (never generated outside the demo)."""


@dataclass(frozen=True)
class Settings:
    #: Kafka bootstrap servers; empty means "start the embedded broker".
    broker: str = ""
    #: Partitions of every event topic. All event topics share it so that one
    #: citizen's or dossier's events land on the same partition number in every
    #: topic (co-partitioning), which is what lets one worker join them.
    partitions: int = 8
    data_dir: Path = Path("data")
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    gateway_port: int = 6070
    pseudonym_key: str = ""
    #: Seconds between counter snapshots published to ``lienthong.aggregates``.
    snapshot_interval: float = 2.0
    #: Faust table store: ``rocksdb://`` on disk for workers, ``memory://`` in tests.
    store: str = "rocksdb://"
    #: Rebalance timeout (Faust's ``broker_rebalance_timeout``); the session timeout is twice it, at
    #: least 10 s. The embedded broker holds a join for half the session timeout, not for this
    #: (measured: docs/performance.md, "Where a restart's 11–13 s go").
    rebalance_timeout: float = 5.0
    app_id: str = "lienthong"
    log_level: str = "INFO"
    #: Optional Confluent schema registry URL; when set, producers use its framing.
    schema_registry_url: str = ""
    gateway_credentials: str = ""
    #: File holding the pseudonym key (instead of ``pseudonym_key`` in the environment).
    pseudonym_key_file: str = ""
    #: Agency signing keys (inline JSON or a file path): see ``schemas.signing``.
    signing_keys: str = ""
    #: The worker counts only messages signed by a known agency; off only by an explicit setting.
    verify_signatures: bool = True
    #: Seconds a signed gateway request's timestamp may differ from the gateway's clock.
    gateway_replay_window: float = 300.0
    #: /healthz is 503 when owned partitions have lag and nothing moved for this long (s).
    health_stall_s: float = 30.0
    #: /healthz is 503 when a rebalance's table recovery has not finished after this long (s).
    health_recovery_s: float = 120.0
    #: SLA overrides in hours by name (``LIENTHONG_SLA_<NAME>``), over ``streams.sla`` defaults.
    sla: dict[str, float] = field(default_factory=dict)
    #: Due deadlines one message reconciles at most; the rest go on with the
    #: partition's following messages (docs/exactly-once.md §2a).
    deadline_step: int = 500
    #: Largest record a worker writes (changelog, snapshots); a larger one is split.
    max_record_bytes: int = 1024 * 1024
    #: Event-id dedupe is exact for events up to this many days behind the newest
    #: event of their topic; older ones are dead-lettered (docs/exactly-once.md §3a).
    dedupe_horizon_days: float = 30.0
    #: Where partition state lives: ``memory`` (folded from the changelog at every
    #: start) or ``disk`` (one RocksDB database per partition, reopened on restart;
    #: docs/exactly-once.md §4).
    state_store: str = "memory"
    #: Values cached in memory per on-disk store and partition (``state_store=disk``).
    state_cache: int = 500
    #: State on disk: a partition's state is checkpointed into its changelog once it has
    #: written this many changelog bytes, and as many as its last checkpoint's size, since
    #: that one (0: never; docs/exactly-once.md §4b).
    checkpoint_bytes: int = 16 * 1024 * 1024
    #: Group commit (docs/exactly-once.md §2b): messages the worker takes at most at
    #: once (what is pending when it is free: no wait), and the source bytes one
    #: group's state change may cover (a larger message is a group of its own).
    group_messages: int = 500
    group_bytes: int = 256 * 1024
    #: Kafka static membership (KIP-345): the worker joins its group as
    #: ``<app_id>.<worker name>``, so a worker restarted under the same name gets
    #: its partitions back without waiting for the group to give up on its
    #: previous incarnation (the session timeout). Worker names must then be
    #: unique and stable. Off by default: the embedded broker (Tansu 0.6) never
    #: expires a killed static member while another worker joins (measured: a
    #: replacement under another name got no partition in 90 s). On in compose,
    #: for Apache Kafka.
    static_membership: bool = False

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            broker=_env("BROKER", ""),
            partitions=int(_env("PARTITIONS", "8")),
            data_dir=Path(_env("DATA_DIR", "data")),
            web_host=_env("WEB_HOST", "127.0.0.1"),
            web_port=int(_env("WEB_PORT", "6066")),
            gateway_port=int(_env("GATEWAY_PORT", "6070")),
            pseudonym_key=_env("PSEUDONYM_KEY", ""),
            snapshot_interval=float(_env("SNAPSHOT_INTERVAL", "2.0")),
            store=_env("STORE", "rocksdb://"),
            rebalance_timeout=float(_env("REBALANCE_TIMEOUT", "5")),
            app_id=_env("APP_ID", "lienthong"),
            log_level=_env("LOG_LEVEL", "INFO"),
            schema_registry_url=_env("SCHEMA_REGISTRY_URL", ""),
            gateway_credentials=_env("GATEWAY_CREDENTIALS", ""),
            pseudonym_key_file=_env("PSEUDONYM_KEY_FILE", ""),
            signing_keys=_env("SIGNING_KEYS", ""),
            verify_signatures=_flag(_env("VERIFY_SIGNATURES", "true"), "VERIFY_SIGNATURES"),
            gateway_replay_window=float(_env("GATEWAY_REPLAY_WINDOW", "300")),
            health_stall_s=float(_env("HEALTH_STALL_S", "30")),
            health_recovery_s=float(_env("HEALTH_RECOVERY_S", "120")),
            sla=_sla_from_env(),
            deadline_step=int(_env("DEADLINE_STEP", "500")),
            max_record_bytes=int(_env("MAX_RECORD_BYTES", str(1024 * 1024))),
            dedupe_horizon_days=float(_env("DEDUPE_HORIZON_DAYS", "30")),
            state_store=_env("STATE_STORE", "memory"),
            state_cache=int(_env("STATE_CACHE", "500")),
            checkpoint_bytes=int(_env("CHECKPOINT_BYTES", str(16 * 1024 * 1024))),
            group_messages=int(_env("GROUP_MESSAGES", "500")),
            group_bytes=int(_env("GROUP_BYTES", str(256 * 1024))),
            static_membership=_flag(_env("STATIC_MEMBERSHIP", "false"), "STATIC_MEMBERSHIP"),
        )

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    def resolved_pseudonym_key(self) -> bytes:
        """The HMAC key; generated once and kept in the data dir when not configured.

        Keeping a generated key beside the data means re-importing a file yields the
        same pseudonyms (so idempotent re-imports keep working) without ever writing
        a default key into the code.
        """
        if self.pseudonym_key:
            return self.pseudonym_key.encode()
        if self.pseudonym_key_file:
            return Path(self.pseudonym_key_file).expanduser().read_text().strip().encode()
        path = self.data_dir / "pseudonym.key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))
        return path.read_text().strip().encode()

    def require_pseudonym_key(self, service: str) -> bytes:
        """The configured pseudonym key, or :class:`MissingSecret` for ``service`` to refuse to start.

        Services never generate the key: a generated key would differ per host and
        per data dir, so the same citizen would get different pseudonyms and the
        hub's joins would silently break. Only ``lienthong demo`` generates one.
        """
        if not self.pseudonym_key and not self.pseudonym_key_file:
            raise MissingSecret(
                f"{service} needs the pseudonym key: set LIENTHONG_PSEUDONYM_KEY or LIENTHONG_PSEUDONYM_KEY_FILE "
                "(the same secret for every connector and worker; only `lienthong demo` generates one)"
            )
        try:
            key = self.resolved_pseudonym_key()
        except OSError as exc:
            raise MissingSecret(f"{service}: cannot read LIENTHONG_PSEUDONYM_KEY_FILE: {exc.strerror}") from None
        if len(key) < 16:
            raise MissingSecret(f"{service}: the pseudonym key must be at least 16 bytes")
        return key

    def __repr__(self) -> str:  # secrets never reach a log line or an error message
        hidden = {"pseudonym_key", "signing_keys", "gateway_credentials"}
        shown = ", ".join(
            f"{k}={'***' if k in hidden and v else v!r}" for k, v in self.__dict__.items()
        )
        return f"Settings({shown})"

    def keyring(self) -> Keyring:
        """The agency signing keys (``LIENTHONG_SIGNING_KEYS``); empty when none are configured."""
        from schemas.signing import Keyring, load_keyring

        return load_keyring(self.signing_keys) if self.signing_keys else Keyring(())
