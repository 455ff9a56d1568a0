"""Every released schema version, loaded from ``schemas/avro/<Name>/v<N>.avsc``.

Released versions are never edited or deleted: a reader must be able to decode
any message ever written, and it finds the writer's schema by the fingerprint in
the message, without a schema registry.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Any

from fastavro import parse_schema
from fastavro.schema import fingerprint, to_parsing_canonical_form

AVRO_DIR = Path(__file__).parent / "avro"
NAMESPACE = "lienthong.events"
ENVELOPE = f"{NAMESPACE}.Envelope"
#: Types that are not events themselves.
NON_EVENT_TYPES = frozenset({"Envelope", "EventBatch", "Flag"})
_VERSION_FILE = re.compile(r"^v(\d+)\.avsc$")


@dataclass(frozen=True)
class SchemaVersion:
    name: str
    version: int
    #: The schema as written by people (envelope inlined), with logical types.
    schema: dict[str, Any]
    #: The same schema without logical types: we decode times to plain epoch
    #: milliseconds and ids to strings, which is several times faster than
    #: building datetime/UUID objects we would only convert back.
    wire: Any
    canonical: str
    fingerprint: bytes
    path: Path

    @cached_property
    def payload_fields(self) -> tuple[str, ...]:
        """Top-level field names other than the envelope (read for every event encoded)."""
        return tuple(f["name"] for f in self.schema["fields"] if f["name"] != "envelope")


def _strip_logical_types(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_logical_types(v) for k, v in node.items() if k != "logicalType"}
    if isinstance(node, list):
        return [_strip_logical_types(v) for v in node]
    return node


def _inline(node: Any, named: dict[str, Any]) -> Any:
    if isinstance(node, str) and node in named:
        return copy.deepcopy(named[node])
    if isinstance(node, dict):
        return {k: _inline(v, named) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(v, named) for v in node]
    return node


def _read(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text(encoding="utf-8")))


def _versions_of(directory: Path) -> list[tuple[int, Path]]:
    found = []
    for path in directory.iterdir():
        match = _VERSION_FILE.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def load_version(name: str, version: int, path: Path, root: Path = AVRO_DIR) -> SchemaVersion:
    raw = _read(path)
    envelope_version = int(raw.pop("envelope_version", 1))
    named = {}
    if name != "Envelope":
        named[ENVELOPE] = _read(root / "Envelope" / f"v{envelope_version}.avsc")
    schema = _inline(raw, named)
    canonical = to_parsing_canonical_form(parse_schema(copy.deepcopy(schema), _write_hint=False))
    digest = fingerprint(canonical, "CRC-64-AVRO")
    return SchemaVersion(
        name=name,
        version=version,
        schema=schema,
        wire=parse_schema(_strip_logical_types(schema), _write_hint=False),
        canonical=canonical,
        fingerprint=int(digest, 16).to_bytes(8, "little"),
        path=path,
    )


class SchemaRegistry:
    """All versions of all contracts, indexed by name and by fingerprint."""

    def __init__(self, root: Path = AVRO_DIR) -> None:
        self.root = root
        self.versions: dict[str, list[SchemaVersion]] = {}
        self.by_fingerprint: dict[bytes, SchemaVersion] = {}
        for directory in sorted(p for p in root.iterdir() if p.is_dir()):
            for version, path in _versions_of(directory):
                sv = load_version(directory.name, version, path, root)
                self.versions.setdefault(sv.name, []).append(sv)
                self.by_fingerprint[sv.fingerprint] = sv

    def latest(self, name: str) -> SchemaVersion:
        return self.versions[name][-1]

    @property
    def event_types(self) -> list[str]:
        return [n for n in self.versions if n not in NON_EVENT_TYPES]


@cache
def default_registry() -> SchemaRegistry:
    return SchemaRegistry()
