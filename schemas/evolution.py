"""Refuses schema changes that would break readers of events already written.

Every message on a topic names its writer schema by fingerprint, and Kafka keeps
old messages (and a replay reads all of them), so a new version of a contract is
only safe if it can read data written by *every* older version (backward,
transitive compatibility). Two checks, because each misses what the other finds:

* **Resolution samples**: records generated from each older (writer) schema,
  covering every enum symbol and union branch, are encoded and read back through
  fastavro's Avro schema resolution with the newer (reader) schema. This is the
  real thing a consumer does.
* **Structural rules** (Avro spec, "Schema Resolution"): a field added without a
  default, an enum symbol dropped without an enum default, a type changed to one
  it cannot be promoted to. They name the field at fault, and catch cases samples
  could miss (an enum symbol absent from every sample would not fail).

Released files are also locked: ``RELEASED.json`` holds a digest of each
released ``.avsc``; editing or deleting one is refused, because old messages
carry its fingerprint and a reader must still find exactly that schema.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastavro import schemaless_reader, schemaless_writer

from schemas.registry import AVRO_DIR, SchemaRegistry, SchemaVersion

LOCK_FILE = "RELEASED.json"
RELEASE_COMMAND = "lienthong schemas check --release"

_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
#: Writer type → reader types it may be promoted to (Avro spec).
_PROMOTIONS: dict[str, frozenset[str]] = {
    "int": frozenset({"int", "long", "float", "double"}),
    "long": frozenset({"long", "float", "double"}),
    "float": frozenset({"float", "double"}),
    "string": frozenset({"string", "bytes"}),
    "bytes": frozenset({"bytes", "string"}),
}


# -- structural rules ----------------------------------------------------------
def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _kind(schema: Any) -> str:
    """Avro kind of a resolved schema: a primitive, union, record, enum, array, map, fixed."""
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, dict):
        return str(schema["type"])
    return schema if schema in _PRIMITIVES else "named"


def _describe(schema: Any) -> str:
    if isinstance(schema, list):
        return "[" + ", ".join(_describe(s) for s in schema) + "]"
    if isinstance(schema, dict):
        return str(schema.get("name") or schema["type"])
    return str(schema)


class _Names:
    """Named types seen so far in one schema, so string references resolve."""

    def __init__(self) -> None:
        self.known: dict[str, Any] = {}

    def resolve(self, schema: Any) -> Any:
        """The schema itself for named references and wrappers; primitives as plain names."""
        if isinstance(schema, str):
            return schema if schema in _PRIMITIVES else self.known.get(_short(schema), schema)
        if isinstance(schema, dict):
            kind = schema.get("type")
            if isinstance(kind, (dict, list)):
                return self.resolve(kind)
            if kind in _PRIMITIVES:
                return kind  # logical types resolve as their underlying type
            if kind in ("record", "error", "enum", "fixed"):
                self.known[_short(schema["name"])] = schema
        return schema


def _matches(writer: Any, reader: Any) -> bool:
    """Whether the reader branch is the one Avro would pick for the writer's type."""
    wk, rk = _kind(writer), _kind(reader)
    if wk in _PRIMITIVES:
        return rk in _PROMOTIONS.get(wk, frozenset({wk}))
    if wk != rk:
        return False
    if wk == "named":
        return _short(writer) == _short(reader)
    if wk in ("record", "enum", "fixed", "error"):
        aliases = {_short(a) for a in reader.get("aliases", [])}
        return _short(writer["name"]) in {_short(reader["name"])} | aliases
    return True


def structural_problems(writer: Any, reader: Any, path: str = "") -> Iterator[str]:
    """Why data written with ``writer`` cannot be read with ``reader``, one line per field."""
    yield from _compare(writer, reader, path, _Names(), _Names())


def _compare(writer: Any, reader: Any, path: str, wn: _Names, rn: _Names) -> Iterator[str]:
    writer, reader = wn.resolve(writer), rn.resolve(reader)
    where = path or "(root)"
    wk, rk = _kind(writer), _kind(reader)
    if wk == "union":
        for branch in writer:
            yield from _compare(branch, reader, path, wn, rn)
        return
    if rk == "union":
        resolved = [rn.resolve(b) for b in reader]
        match = next((b for b in resolved if _matches(writer, b)), None)
        if match is None:
            yield f"field {where!r}: old {_describe(writer)} matches no branch of {_describe(reader)}"
        else:
            yield from _compare(writer, match, path, wn, rn)
        return
    if not _matches(writer, reader):
        yield f"field {where!r}: type changed from {_describe(writer)} to {_describe(reader)}"
        return
    if wk in ("record", "error"):
        old_fields = {f["name"]: f for f in writer["fields"]}
        for field in reader["fields"]:
            name = field["name"]
            sub = f"{path}.{name}" if path else name
            source = old_fields.get(name) or next(
                (old_fields[a] for a in field.get("aliases", []) if a in old_fields), None
            )
            if source is None:
                if "default" not in field:
                    yield f"field {sub!r}: added without a default, so older events cannot fill it"
                continue
            yield from _compare(source["type"], field["type"], sub, wn, rn)
    elif wk == "enum":
        removed = [s for s in writer["symbols"] if s not in reader["symbols"]]
        if removed and "default" not in reader:
            yield (
                f"field {where!r}: enum symbol(s) {', '.join(removed)} removed without an enum "
                "default, so older events holding them cannot be read"
            )
    elif wk == "fixed" and writer["size"] != reader["size"]:
        yield f"field {where!r}: fixed size changed from {writer['size']} to {reader['size']}"
    elif wk == "array":
        yield from _compare(writer["items"], reader["items"], f"{path}[]", wn, rn)
    elif wk == "map":
        yield from _compare(writer["values"], reader["values"], f"{path}{{}}", wn, rn)


# -- resolution samples --------------------------------------------------------
def _width(schema: Any, seen: set[str] | None = None) -> int:
    """How many samples it takes to visit every enum symbol and union branch."""
    seen = set() if seen is None else seen
    if isinstance(schema, list):
        return max([len(schema)] + [_width(s, seen) for s in schema])
    if not isinstance(schema, dict):
        return 1
    kind = schema["type"]
    if isinstance(kind, (dict, list)):
        return _width(kind, seen)
    if kind in ("record", "error"):
        if schema["name"] in seen:
            return 1
        seen.add(schema["name"])
        return max([1] + [_width(f["type"], seen) for f in schema["fields"]])
    if kind == "enum":
        return len(schema["symbols"])
    if kind == "array":
        return _width(schema["items"], seen)
    if kind == "map":
        return _width(schema["values"], seen)
    return 1


def sample(schema: Any, k: int, named: dict[str, Any] | None = None) -> Any:
    """Deterministic record number ``k`` for a parsed (wire) schema.

    Sample ``k`` takes enum symbol ``k`` and union branch ``k`` (modulo their
    counts) everywhere, so ``_width`` samples cover every symbol and branch;
    odd samples use empty strings, arrays and zeros, even ones non-empty values.
    """
    named = {} if named is None else named
    if isinstance(schema, list):
        return sample(schema[k % len(schema)], k, named)
    if isinstance(schema, str):
        if schema in named:
            return sample(named[schema], k, named)
        return _primitive(schema, k)
    kind = schema["type"]
    if isinstance(kind, (dict, list)) or (isinstance(kind, str) and kind in _PRIMITIVES):
        return sample(kind, k, named)
    if kind in ("record", "error", "enum", "fixed"):
        named[schema["name"]] = schema
    if kind in ("record", "error"):
        return {f["name"]: sample(f["type"], k, named) for f in schema["fields"]}
    if kind == "enum":
        return schema["symbols"][k % len(schema["symbols"])]
    if kind == "fixed":
        return bytes([k % 256]) * schema["size"]
    if kind == "array":
        return [] if k % 2 else [sample(schema["items"], k + i, named) for i in range(2)]
    if kind == "map":
        return {} if k % 2 else {"a": sample(schema["values"], k, named)}
    raise ValueError(f"unsupported Avro type {kind!r}")


def _primitive(kind: str, k: int) -> Any:
    empty = k % 2 == 1
    return {
        "null": None,
        "boolean": bool(k % 2),
        "int": 0 if empty else -(2**31) + k,
        "long": 0 if empty else 1_717_200_000_000 + k,
        "float": 0.0 if empty else 1.5,
        "double": 0.0 if empty else -2.25,
        "bytes": b"" if empty else bytes([k % 256, 0xC3]),
        "string": "" if empty else f"Phường {k} – ả",
    }[kind]


def resolution_problems(writer: SchemaVersion, reader: SchemaVersion) -> list[str]:
    """Encode samples with the writer, read them with the reader, report failures."""
    problems = []
    for k in range(max(2, _width(writer.wire) + 1)):
        record = sample(writer.wire, k)
        out = io.BytesIO()
        schemaless_writer(out, writer.wire, record)
        out.seek(0)
        try:
            schemaless_reader(out, writer.wire, reader.wire)
        except Exception as exc:  # noqa: BLE001 - fastavro raises many types on resolution failure
            problems.append(f"sample {k} written by v{writer.version} unreadable: {exc}")
            break
    return problems


# -- released-file lock --------------------------------------------------------
def _without_docs(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_docs(v) for k, v in node.items() if k != "doc"}
    if isinstance(node, list):
        return [_without_docs(v) for v in node]
    return node


def release_digest(path: Path) -> str:
    """SHA-256 of what a reader depends on in one ``.avsc`` file.

    Avro's parsing canonical form drops defaults and aliases, yet both change how
    a reader resolves old data; so the digest is over the file's JSON with only
    ``doc`` removed (docs may be improved after release), keys sorted.
    """
    parsed = json.loads(path.read_text(encoding="utf-8"))
    text = json.dumps(_without_docs(parsed), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _schema_files(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("*/v*.avsc") if p.is_file())


def _key(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def read_lock(root: Path) -> dict[str, str]:
    path = root / LOCK_FILE
    if not path.exists():
        return {}
    return dict(json.loads(path.read_text(encoding="utf-8")))


def lock_problems(root: Path) -> list[str]:
    problems = []
    released = read_lock(root)
    for key, digest in sorted(released.items()):
        path = root / key
        if not path.exists():
            problems.append(f"{key}: released version deleted; released versions are kept forever")
        elif release_digest(path) != digest:
            problems.append(
                f"{key}: released file modified; add a new version instead "
                "(old messages carry this version's fingerprint)"
            )
    return problems


# -- the whole check -----------------------------------------------------------
def _type_problems(name: str, versions: list[SchemaVersion]) -> list[str]:
    problems = []
    numbers = [sv.version for sv in versions]
    if numbers != list(range(1, len(numbers) + 1)):
        problems.append(f"{name}: versions {numbers} are not v1..v{len(numbers)} without gaps")
    for sv in versions:
        if _short(sv.schema.get("name", "")) != name:
            problems.append(f"{name} v{sv.version}: record is named {sv.schema.get('name')!r}, not {name!r}")
    for i, reader in enumerate(versions):
        for writer in versions[:i]:
            prefix = f"{name} v{reader.version} cannot read v{writer.version}"
            found = list(structural_problems(copy.deepcopy(writer.schema), copy.deepcopy(reader.schema)))
            if not found:
                found = resolution_problems(writer, reader)
            problems.extend(f"{prefix}: {p}" for p in found)
    return problems


def check_all(root: Path = AVRO_DIR) -> list[str]:
    """Every problem with the contracts under ``root``; empty when all is well."""
    try:
        registry = SchemaRegistry(root)
    except Exception as exc:  # noqa: BLE001 - a schema that does not even parse is a problem to report
        return [f"schemas under {root} do not load: {exc}"]
    problems = lock_problems(root)
    by_fingerprint: dict[bytes, SchemaVersion] = {}
    for name, versions in registry.versions.items():
        problems.extend(_type_problems(name, versions))
        for sv in versions:
            other = by_fingerprint.setdefault(sv.fingerprint, sv)
            if other is not sv:
                problems.append(
                    f"{name} v{sv.version}: same fingerprint {sv.fingerprint.hex()} as "
                    f"{other.name} v{other.version}; a reader could not tell them apart"
                )
    return problems


def release(root: Path = AVRO_DIR) -> list[str]:
    """Lock every current ``.avsc`` as released, unless the check finds problems.

    Already-released entries keep their recorded digest: releasing never blesses
    an edit to a released file.
    """
    problems = check_all(root)
    if problems:
        return problems
    released = read_lock(root)
    for path in _schema_files(root):
        released.setdefault(_key(root, path), release_digest(path))
    (root / LOCK_FILE).write_text(json.dumps(dict(sorted(released.items())), indent=2) + "\n", encoding="utf-8")
    return []

