"""Optional Confluent wire framing, for sites that run a schema registry.

Confluent framing is ``00`` + 4-byte big-endian schema id + Avro body; the id
means nothing without the registry, which is why single-object encoding (the
fingerprint travels in the message) stays the default. Where a registry is
configured (``LIENTHONG_SCHEMA_REGISTRY_URL``), producers register each schema
under its record name (RecordNameStrategy: several event types share a topic)
and write that framing; readers accept both framings, told apart by the first
byte (``C3`` single-object, ``00`` Confluent).

Only two registry endpoints are used, with the standard library's urllib:
``POST /subjects/{subject}/versions`` (register, idempotent: returns the
existing id) and ``GET /schemas/ids/{id}``. Both answers are cached for the
life of the process: a schema id never changes meaning.
"""

from __future__ import annotations

import json
import os
import threading
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from fastavro import parse_schema
from fastavro.schema import fingerprint, to_parsing_canonical_form

from schemas.errors import ContractError
from schemas.registry import SchemaRegistry, SchemaVersion

MAGIC = 0
HEADER_LEN = 5
CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
ENV_URL = "LIENTHONG_SCHEMA_REGISTRY_URL"


class SchemaRegistryUnavailable(RuntimeError):
    """The registry could not be reached or answered with a server error.

    Deliberately not a ``ContractError``: the message is not at fault, so a
    consumer must retry rather than dead-letter it.
    """


def subject_of(sv: SchemaVersion) -> str:
    """RecordNameStrategy subject: the record's full name, e.g. ``lienthong.events.WelfarePaid``."""
    name = str(sv.schema["name"])
    namespace = sv.schema.get("namespace")
    return name if "." in name or not namespace else f"{namespace}.{name}"


class RegistryClient:
    """The two schema-registry calls the codec needs, cached."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._ids: dict[tuple[str, str], int] = {}
        self._schemas: dict[int, str] = {}
        self._lock = threading.Lock()

    def register(self, subject: str, schema: str) -> int:
        """The id of ``schema`` under ``subject``, registering it the first time."""
        key = (subject, schema)
        with self._lock:
            if key in self._ids:
                return self._ids[key]
        path = f"/subjects/{urllib.parse.quote(subject, safe='')}/versions"
        answer = self._call("POST", path, {"schema": schema})
        schema_id = int(answer["id"])
        with self._lock:
            self._ids[key] = schema_id
            self._schemas.setdefault(schema_id, schema)
        return schema_id

    def schema(self, schema_id: int) -> str | None:
        """The schema text registered under ``schema_id``; ``None`` if the registry has none."""
        with self._lock:
            if schema_id in self._schemas:
                return self._schemas[schema_id]
        try:
            answer = self._call("GET", f"/schemas/ids/{schema_id}", None)
        except _NotFound:
            return None
        text = str(answer["schema"])
        with self._lock:
            self._schemas[schema_id] = text
        return text

    def _call(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method=method,
            headers={"Content-Type": CONTENT_TYPE, "Accept": CONTENT_TYPE},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return dict(json.loads(response.read()))
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise _NotFound(path) from None
            raise SchemaRegistryUnavailable(f"{method} {path}: HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise SchemaRegistryUnavailable(f"{method} {path}: {exc}") from None


class _NotFound(Exception):
    pass


class ConfluentFraming:
    """Frames bodies with registry ids and finds the released version behind an id."""

    def __init__(self, client: RegistryClient, registry: SchemaRegistry) -> None:
        self.client = client
        self.registry = registry
        self._versions: dict[int, SchemaVersion] = {}

    def header(self, sv: SchemaVersion) -> bytes:
        schema_id = self.client.register(subject_of(sv), json.dumps(sv.schema, sort_keys=True))
        return bytes([MAGIC]) + schema_id.to_bytes(4, "big")

    def writer_of(self, data: bytes) -> SchemaVersion:
        """The released version that wrote a Confluent-framed message.

        The registry's schema is matched to our own versions by fingerprint, so
        a schema someone registered that we never released is refused, just as
        an unknown fingerprint is in single-object encoding.
        """
        if len(data) < HEADER_LEN:
            raise ContractError("message", "too short for the Confluent framing")
        schema_id = int.from_bytes(data[1:HEADER_LEN], "big")
        if schema_id in self._versions:
            return self._versions[schema_id]
        text = self.client.schema(schema_id)
        if text is None:
            raise ContractError("schema_id", f"the schema registry has no schema {schema_id}")
        try:
            canonical = to_parsing_canonical_form(parse_schema(json.loads(text), _write_hint=False))
        except Exception:  # noqa: BLE001 - any unparsable registry answer means the same
            raise ContractError("schema_id", f"schema {schema_id} in the registry is not valid Avro") from None
        digest = int(fingerprint(canonical, "CRC-64-AVRO"), 16).to_bytes(8, "little")
        sv = self.registry.by_fingerprint.get(digest)
        if sv is None:
            raise ContractError("schema_id", f"schema {schema_id} is not a released lienthong contract")
        self._versions[schema_id] = sv
        return sv


def framing_from_url(url: str, registry: SchemaRegistry) -> ConfluentFraming | None:
    """Confluent framing when a registry URL is given, else ``None`` (single-object)."""
    return ConfluentFraming(RegistryClient(url), registry) if url else None


def framing_from_env(registry: SchemaRegistry) -> ConfluentFraming | None:
    """As :func:`framing_from_url`, from ``LIENTHONG_SCHEMA_REGISTRY_URL``."""
    return framing_from_url(os.environ.get(ENV_URL, ""), registry)

