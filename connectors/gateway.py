"""The HTTP gateway: agencies without a Kafka client POST their events as JSON.

``POST /v1/events`` takes one event object or ``{"events": [...]}``. Each agency
authenticates with its own bearer token and/or an HMAC signature of the body, and
may publish only its own event types under its own name. An answer of 202 means the
broker acknowledged every event (acks=all): the agency can forget them. A batch is
all or nothing: one bad event refuses the request (naming its index and field), so
the agency fixes it and re-sends the batch without wondering which part went in.

No replay: a signed request signs its ``X-Lienthong-Timestamp`` and
``X-Lienthong-Nonce`` with the body, and is refused (401) outside the time window
or when its nonce was used inside it (:class:`ReplayGuard`). An event sent without
``event_id`` gets one derived from its content, so a blind retry counts once.

Raw ``citizen_id`` numbers are pseudonymised before anything leaves the request
handler; logs carry event ids, never payloads.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from connectors.csv_import import derive_event_id
from connectors.json_event import ForbiddenEvent, event_from_json, redact
from connectors.sdk import Publisher, check_connector_secrets
from hubbase.logs import get_logger
from hubbase.settings import MissingSecret, Settings
from schemas.errors import ContractError
from schemas.json_source import read_json_source
from schemas.pseudonym import Pseudonymiser
from schemas.signing import KeyringError
from schemas.validation import Event
from schemas.vocabulary import AGENCIES

log = get_logger(__name__)

#: Events per request: a bound on memory and on how long one request holds the producer.
MAX_BATCH = 1000
MAX_BODY_BYTES = 8 * 1024 * 1024
#: Shortest token or secret accepted: anything shorter is guessable.
MIN_SECRET_LEN = 16
HEARTBEAT_INTERVAL = 30.0
ACK_TIMEOUT = 30.0
# -- credentials ----------------------------------------------------------------


class CredentialsError(ValueError):
    """The gateway's credentials configuration is unusable (never quotes a secret)."""


class Unauthorized(Exception):
    """The request does not prove which agency sent it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class AgencyCredential:
    """What an agency must present: a bearer token, a signing secret, or both."""

    agency: str
    token: str | None = None
    secret: str | None = None

    def __repr__(self) -> str:  # never show a secret
        return f"AgencyCredential({self.agency}, token={'***' if self.token else None}, secret={'***' if self.secret else None})"


def parse_credentials(config: Any) -> dict[str, AgencyCredential]:
    """``{"POLICE": {"token": "...", "secret": "..."}, ...}`` as checked credentials."""
    if not isinstance(config, dict) or not config:
        raise CredentialsError('credentials must be a JSON object like {"POLICE": {"token": "..."}}')
    creds: dict[str, AgencyCredential] = {}
    tokens: set[str] = set()
    for agency, entry in config.items():
        if agency not in AGENCIES:
            raise CredentialsError(f"{agency!r} is not an agency (one of {', '.join(AGENCIES)})")
        if not isinstance(entry, dict):
            raise CredentialsError(f"{agency}: must be an object with token and/or secret")
        unknown = set(entry) - {"token", "secret"}
        if unknown:
            raise CredentialsError(f"{agency}: unknown keys {sorted(unknown)}")
        values = {}
        for key in ("token", "secret"):
            value = entry.get(key)
            if value is None:
                continue
            if not isinstance(value, str) or len(value) < MIN_SECRET_LEN:
                raise CredentialsError(f"{agency}.{key}: must be a string of at least {MIN_SECRET_LEN} characters")
            values[key] = value
        if not values:
            raise CredentialsError(f"{agency}: needs a token or a secret")
        if "token" in values:
            if values["token"] in tokens:
                raise CredentialsError(f"{agency}.token: is shared with another agency")
            tokens.add(values["token"])
        creds[agency] = AgencyCredential(agency, values.get("token"), values.get("secret"))
    return creds


def load_credentials(source: Path | str) -> dict[str, AgencyCredential]:
    """Credentials from a JSON file, or from inline JSON (``LIENTHONG_GATEWAY_CREDENTIALS``)."""
    return parse_credentials(read_json_source(source, "credentials", CredentialsError))


def _same(a: str, b: str) -> bool:
    """Constant-time comparison, so response times do not leak a secret byte by byte."""
    return hmac.compare_digest(a.encode(), b.encode())


def signed_bytes(timestamp: str, nonce: str, body: bytes) -> bytes:
    """What a signature covers: the timestamp and nonce headers, then the body, newline-separated."""
    return timestamp.encode() + b"\n" + nonce.encode() + b"\n" + body


def sign(secret: str, body: bytes, timestamp: str, nonce: str) -> str:
    """The ``X-Lienthong-Signature`` value for a request: what an agency's client sends.

    ``timestamp`` is the ``X-Lienthong-Timestamp`` header (Unix seconds) and
    ``nonce`` the ``X-Lienthong-Nonce`` header (unique per request): both are
    signed, so a captured request cannot be re-sent later or twice.
    """
    return "sha256=" + hmac.new(secret.encode(), signed_bytes(timestamp, nonce, body), hashlib.sha256).hexdigest()


def signature_headers(agency: str, secret: str, body: bytes, now: float | None = None) -> dict[str, str]:
    """Every header of a signed request (for agency clients and tests): a fresh nonce, the current time."""
    timestamp = str(int(time.time() if now is None else now))
    nonce = secrets.token_hex(16)
    return {"X-Lienthong-Agency": agency, "X-Lienthong-Timestamp": timestamp, "X-Lienthong-Nonce": nonce,
            "X-Lienthong-Signature": sign(secret, body, timestamp, nonce)}


_NONCE = re.compile(r"^[A-Za-z0-9._~-]{16,128}$")


class ReplayGuard:
    """Refuses signed requests outside the time window, or whose nonce was already used in it.

    Nonces are remembered only as long as their timestamp is inside the window
    (older ones are refused by the clock check anyway), so memory is bounded by the
    request rate times the window. Kept in the gateway's memory: several gateways,
    or a restart, can each accept a capture once more inside the window, and the
    content-derived ``event_id`` is what makes such a replay count once anyway.
    """

    def __init__(self, window_s: float = 300.0, clock: Callable[[], float] = time.time) -> None:
        self.window_s = window_s
        self.clock = clock
        self._seen: dict[tuple[str, str], float] = {}
        self._expiry: deque[tuple[float, tuple[str, str]]] = deque()

    def check(self, agency: str, timestamp: str, nonce: str) -> None:
        """Raise :class:`Unauthorized` for a stale, future or replayed request; else remember its nonce."""
        try:
            sent = float(timestamp)
        except ValueError:
            raise Unauthorized("X-Lienthong-Timestamp must be Unix seconds") from None
        now = self.clock()
        if abs(now - sent) > self.window_s:
            raise Unauthorized(
                f"X-Lienthong-Timestamp is {now - sent:+.0f} s from the gateway's clock; "
                f"allowed ±{self.window_s:.0f} s (check the clock, then sign a new request)"
            )
        if not _NONCE.match(nonce):
            raise Unauthorized("X-Lienthong-Nonce must be 16-128 characters of A-Z a-z 0-9 . _ ~ -")
        while self._expiry and self._expiry[0][0] < now:
            _, old = self._expiry.popleft()
            self._seen.pop(old, None)
        key = (agency, nonce)
        if key in self._seen:
            raise Unauthorized("X-Lienthong-Nonce was already used: a replayed request is refused")
        expires = sent + self.window_s
        self._seen[key] = expires
        self._expiry.append((max(expires, now), key))


class Authenticator:
    """Tells which agency sent a request, checking every credential it has configured.

    An agency with a token must send it (``Authorization: Bearer``); one with a
    secret must sign the body (``X-Lienthong-Signature`` + ``X-Lienthong-Agency``),
    which also proves the body was not altered on the way.
    """

    def __init__(self, credentials: Mapping[str, AgencyCredential], replay: ReplayGuard | None = None) -> None:
        self.credentials = dict(credentials)
        self.replay = replay or ReplayGuard()

    def _agency_of_token(self, token: str) -> str | None:
        found = None
        for cred in self.credentials.values():  # no early exit: same time whatever matches
            if cred.token is not None and _same(cred.token, token):
                found = cred.agency
        return found

    def authenticate(self, headers: Mapping[str, str], body: bytes) -> str:
        """The agency behind the request, or :class:`Unauthorized` saying what is missing."""
        authorization = headers.get("Authorization", "")
        signature = headers.get("X-Lienthong-Signature", "")
        claimed = headers.get("X-Lienthong-Agency", "").strip()
        if not authorization and not signature:
            raise Unauthorized("send Authorization: Bearer <token>, or X-Lienthong-Signature and X-Lienthong-Agency")
        agency: str | None = None
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthorized("Authorization must be 'Bearer <token>'")
            agency = self._agency_of_token(token.strip())
            if agency is None:
                raise Unauthorized("invalid token")
            if claimed and claimed != agency:
                raise Unauthorized("X-Lienthong-Agency does not match the token")
        else:
            agency = claimed or None
            if agency is None:
                raise Unauthorized("X-Lienthong-Signature needs X-Lienthong-Agency")
        cred = self.credentials.get(agency)
        if cred is None:
            raise Unauthorized("invalid signature")
        if cred.token is not None and not authorization:
            raise Unauthorized(f"{agency} must also send its bearer token")
        if cred.secret is not None:
            if not signature:
                raise Unauthorized(f"{agency} must sign the body (X-Lienthong-Signature)")
            if not signature.startswith("sha256="):
                raise Unauthorized("X-Lienthong-Signature must be sha256=<hex>")
            timestamp = headers.get("X-Lienthong-Timestamp", "").strip()
            nonce = headers.get("X-Lienthong-Nonce", "").strip()
            if not timestamp or not nonce:
                raise Unauthorized("a signed request needs X-Lienthong-Timestamp and X-Lienthong-Nonce (both signed)")
            if not _same(sign(cred.secret, body, timestamp, nonce), signature.strip().lower()):
                raise Unauthorized("invalid signature")
            self.replay.check(agency, timestamp, nonce)  # only after the signature: nobody else can burn a nonce
        elif signature:
            raise Unauthorized(f"{agency} has no signing secret configured")
        return agency


# -- publishing -----------------------------------------------------------------


class AgencyPublishers:
    """One :class:`Publisher` per agency over one shared producer, with group commit.

    Per agency so heartbeats and ``sent_total`` are per agency. Requests that arrive
    while a flush is in progress are published together and acknowledged by one
    flush (group commit): one broker round trip for many requests, and a request
    still hears 202 only when its own agency's events were all acknowledged. All
    producer calls go through one thread, so a flush's failures are attributed to
    exactly the requests it covered.
    """

    def __init__(self, bootstrap: str, agencies: Iterable[str]) -> None:
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gateway-produce")
        self.publishers: dict[str, Publisher] = {}
        producer = None
        for agency in sorted(set(agencies)):
            publisher = Publisher(bootstrap, connector=f"gateway-{agency.lower()}", batch_size=1,
                                  heartbeat_source=agency, producer=producer)
            producer = publisher.producer
            self.publishers[agency] = publisher
        self._producer = producer
        self._pending: list[tuple[str, list[Event], asyncio.Future[None]]] = []
        self._lock = threading.Lock()

    def _publish_pending(self) -> None:
        """Publish every waiting request, flush once per agency involved, settle their futures."""
        with self._lock:
            group, self._pending = self._pending, []
        if not group:
            return
        failed: dict[str, BaseException] = {}
        for agency, events, _ in group:
            try:
                for event in events:
                    self.publishers[agency].publish(event)  # a ValidEvent: checked by event_from_json
            except Exception as exc:  # noqa: BLE001 - settled as this agency's failure below
                failed.setdefault(agency, exc)
        for agency in {agency for agency, _, _ in group}:
            try:
                self.publishers[agency].flush(ACK_TIMEOUT)
            except Exception as exc:  # noqa: BLE001 - settled as this agency's failure below
                failed.setdefault(agency, exc)
        for agency, _, future in group:
            error = failed.get(agency)
            future.get_loop().call_soon_threadsafe(_settle, future, error)

    async def publish(self, agency: str, events: list[Event]) -> None:
        """Return once the broker acknowledged every event; raise if it did not."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            self._pending.append((agency, events, future))
        loop.run_in_executor(self.executor, self._publish_pending)
        await future

    async def heartbeat(self, agencies: Iterable[str]) -> None:
        loop = asyncio.get_running_loop()
        for agency in agencies:
            await loop.run_in_executor(self.executor, self.publishers[agency].heartbeat)

    @property
    def sent_total(self) -> int:
        return sum(p.sent_total for p in self.publishers.values())

    def close(self) -> None:
        try:
            for publisher in self.publishers.values():
                publisher.flush(ACK_TIMEOUT)
        finally:
            if self._producer is not None:
                self._producer.close()
            self.executor.shutdown(wait=True)


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():  # the request was cancelled (client gone)
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


# -- HTTP -----------------------------------------------------------------------


@dataclass
class Gateway:
    """What the request handlers share."""

    auth: Authenticator
    publishers: AgencyPublishers
    pseudonymiser: Pseudonymiser
    heartbeat_interval: float
    active: set[str]


GATEWAY = web.AppKey("gateway", Gateway)


def _refusal(status: int, exc: ContractError, index: int | None, batch: bool) -> web.Response:
    where = f"events[{index}]." if batch and index is not None else ""
    body: dict[str, Any] = {
        "error": redact(f"{where}{exc.field}: {exc.reason}"),
        "field": redact(exc.field),
        "reason": redact(exc.reason),
    }
    if exc.event_type:
        body["event_type"] = exc.event_type
    if batch and index is not None:
        body["index"] = index
    return web.json_response(body, status=status)


def parse_body(body: bytes) -> tuple[list[Any], bool]:
    """The request's event objects, and whether it was a batch."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ContractError("body", "is not valid JSON") from None
    if not isinstance(document, dict):
        raise ContractError("body", 'must be an event object or {"events": [...]}')
    if "events" not in document:
        return [document], False
    items = document["events"]
    if set(document) != {"events"}:
        raise ContractError("body", 'a batch must hold only "events"')
    if not isinstance(items, list) or not items:
        raise ContractError("events", "must be a non-empty list of event objects")
    if len(items) > MAX_BATCH:
        raise ContractError("events", f"holds {len(items)} events; at most {MAX_BATCH} per request")
    return items, True


async def post_events(request: web.Request) -> web.Response:
    """Authenticate, check every event, publish them all, answer 202 once acknowledged."""
    gateway = request.app[GATEWAY]
    body = await request.read()
    try:
        agency = gateway.auth.authenticate(request.headers, body)
    except Unauthorized as exc:
        log.warning("request_unauthorized", reason=exc.reason, remote=request.remote)
        return web.json_response({"error": "unauthorized", "reason": exc.reason}, status=401,
                                 headers={"WWW-Authenticate": 'Bearer realm="lienthong"'})
    gateway.active.add(agency)
    try:
        items, batch = parse_body(body)
    except ContractError as exc:
        log.warning("request_refused", agency=agency, status=400, field=exc.field, reason=exc.reason)
        return _refusal(400, exc, None, False)
    events: list[Event] = []
    refused: list[tuple[int, int, ContractError]] = []
    for index, item in enumerate(items):
        try:
            event = event_from_json(item, agency=agency, pseudonymiser=gateway.pseudonymiser)
            if not item.get("event_id"):
                # a blind retry of the same content gets the same id, so it counts once
                event["event_id"] = derive_event_id(event)
            events.append(event)
        except ForbiddenEvent as exc:
            refused.append((403, index, exc))
        except ContractError as exc:
            refused.append((400, index, exc))
    if refused:
        status = 403 if any(s == 403 for s, _, _ in refused) else 400
        _, index, first = next(r for r in refused if r[0] == status)
        log.warning("request_refused", agency=agency, status=status, index=index, field=first.field,
                    reason=redact(first.reason), refused=len(refused), events=len(items))
        return _refusal(status, first, index, batch)
    try:
        await gateway.publishers.publish(agency, events)
    except Exception as exc:  # noqa: BLE001 - any failure to get the ack means: the agency must retry
        log.error("publish_failed", agency=agency, events=len(events), error=redact(str(exc)))
        return web.json_response(
            {"error": "the broker did not acknowledge the events; retry (send event_id to make retries safe)"},
            status=503,
        )
    event_ids = [e["event_id"] for e in events]
    log.info("events_accepted", agency=agency, events=len(events), event_ids=event_ids)
    return web.json_response({"event_ids": event_ids}, status=202)


async def healthz(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    return web.json_response({"status": "ok", "sent_total": gateway.publishers.sent_total})


@web.middleware
async def _errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Unexpected failures answer 500 and are logged through the redacting logger."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception as exc:  # noqa: BLE001 - the last line of defence, logged redacted
        log.error("request_failed", path=request.path, error=type(exc).__name__, detail=redact(str(exc)))
        return web.json_response({"error": "internal error"}, status=500)


async def _beat(gateway: Gateway) -> None:
    """Beat for each agency heard from since the last beat.

    Only those: a gateway beating for every configured agency would hide an
    agency whose own system went quiet (AGENCY_SILENT). An idle agency keeps
    itself alive by POSTing a ``ConnectorHeartbeat``.
    """
    while True:
        await asyncio.sleep(gateway.heartbeat_interval)
        heard, gateway.active = gateway.active, set()
        try:
            await gateway.publishers.heartbeat(sorted(heard))
        except Exception as exc:  # noqa: BLE001 - a heartbeat must never stop the gateway
            log.warning("heartbeat_failed", error=str(exc))


def build_gateway_app(
    settings: Settings,
    credentials: Mapping[str, AgencyCredential],
    publishers: AgencyPublishers | None = None,
    *,
    heartbeat_interval: float = HEARTBEAT_INTERVAL,
) -> web.Application:
    """The gateway as an aiohttp app; its publishers are closed with the app.

    Without ``publishers``, one per configured agency is made on ``settings.broker``.
    """
    publishers = publishers or AgencyPublishers(settings.broker, credentials)
    gateway = Gateway(Authenticator(credentials, ReplayGuard(settings.gateway_replay_window)), publishers, Pseudonymiser(settings.resolved_pseudonym_key()),
                      heartbeat_interval, set())
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[_errors])
    app[GATEWAY] = gateway
    app.router.add_post("/v1/events", post_events)
    app.router.add_get("/healthz", healthz)

    async def heartbeats(app: web.Application) -> Any:
        task = asyncio.create_task(_beat(gateway))
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.get_running_loop().run_in_executor(None, publishers.close)

    app.cleanup_ctx.append(heartbeats)
    return app


def run_gateway(settings: Settings, credentials: Path | None) -> None:
    """``lienthong gateway``: serve until SIGTERM/Ctrl-C, then flush and stop."""
    import click

    from hubbase.topic_admin import ensure_topics

    source: Path | str | None = credentials or settings.gateway_credentials or None
    if source is None:
        raise click.UsageError("the gateway needs agency credentials: --credentials FILE or LIENTHONG_GATEWAY_CREDENTIALS")
    try:
        creds = load_credentials(source)
        check_connector_secrets(settings, "the gateway", creds)
    except (CredentialsError, KeyringError, MissingSecret) as exc:
        raise click.UsageError(str(exc)) from None
    ensure_topics(settings.broker, settings.partitions)
    app = build_gateway_app(settings, creds)
    started = time.monotonic()

    async def announce(app: web.Application) -> None:
        log.info("gateway_listening", host=settings.web_host, port=settings.gateway_port,
                 agencies=sorted(creds), startup_s=round(time.monotonic() - started, 2))

    app.on_startup.append(announce)
    web.run_app(app, host=settings.web_host, port=settings.gateway_port, access_log=None, print=None)
    log.info("gateway_stopped")
