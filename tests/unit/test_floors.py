"""The house plan, enforced: imports only go down the floors, and nothing imports in a circle.

Floors, lowest first (docs/architecture.md):

    schemas      the contracts: Avro, topic names, vocabularies, codec (no I/O)
    hubbase      the ground floor: settings, logs, Kafka security, topic admin, broker
    connectors   agency side            streams   worker side (siblings: neither sees the other)
    bench        benchmarks, run by hand
    lienthong    the front door: CLI, demo, status, dead-letter and audit commands

Imports are read from the source with ``ast`` (function-level imports included, since
a lazy import is still a dependency), so the test needs nothing installed or running.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FLOOR = {"schemas": 0, "hubbase": 1, "connectors": 2, "streams": 2, "bench": 3, "lienthong": 4}


def _modules(package: str) -> dict[str, Path]:
    found = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


ALL_MODULES = {name: path for package in FLOOR for name, path in _modules(package).items()}


def _imported(module: str, path: Path) -> Iterable[str]:
    """Every module name ``module`` imports, relative imports resolved."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def _graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (names that are not modules are dropped)."""
    return {
        module: {name for name in _imported(module, path) if name in ALL_MODULES and name != module}
        for module, path in ALL_MODULES.items()
    }


GRAPH = _graph()


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _top(module: str) -> str:
    return module.split(".")[0]


@pytest.mark.parametrize("package", [p for p in FLOOR if p != "lienthong"])
def test_no_floor_imports_the_front_door(package: str) -> None:
    climbing = sorted(
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        if _top(module) == package
        for target in targets
        if _top(target) == "lienthong"
    )
    assert climbing == []


def test_imports_only_go_down_the_floors() -> None:
    climbing = sorted(
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        for target in targets
        if _top(target) != _top(module) and FLOOR[_top(target)] >= FLOOR[_top(module)]
    )
    assert climbing == []


def test_no_import_cycle_between_top_level_packages() -> None:
    packages: dict[str, set[str]] = {p: set() for p in FLOOR}
    for module, targets in GRAPH.items():
        packages[_top(module)] |= {_top(t) for t in targets if _top(t) != _top(module)}
    assert _cycles(packages) == []


def test_no_import_cycle_between_modules() -> None:
    """Also within a package: web, metrics and the worker shell (streams/app.py) included."""
    assert _cycles(GRAPH) == []


def test_the_import_reader_sees_a_cycle_when_there_is_one() -> None:
    """The cycle finder itself: a test that cannot fail is a defect."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_import_reader_resolves_the_imports_of_a_known_module() -> None:
    assert "hubbase.settings" in GRAPH["streams.worker"]


def test_the_import_reader_sees_imports_inside_functions_and_methods(tmp_path: Path) -> None:
    """A lazy import is still a dependency: one slipped through from streams/app.py before."""
    module = tmp_path / "app.py"
    module.write_text(
        "import os\n"
        "def start():\n"
        "    from lienthong.topics import ensure_topics\n"
        "class Hub:\n"
        "    def run(self):\n"
        "        import hubbase.broker\n"
        "        if self:\n"
        "            from . import web\n",
        encoding="utf-8",
    )
    seen = set(_imported("streams.app", module))
    assert {"os", "lienthong.topics", "hubbase.broker", "streams.web"} <= seen


#: Calls that hand a record to a Kafka producer (aiokafka's or Faust's, a topic's or an agent's).
PRODUCER_CALLS = {"send", "send_soon", "send_and_wait", "_ensure_producer"}


def _producer_calls(source: str) -> list[str]:
    """The calls in ``source`` that reach a Kafka producer: ``x.send(...)`` and the like,
    and any method called on an ``x.producer``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            receiver = node.func.value
            if node.func.attr in PRODUCER_CALLS or (
                isinstance(receiver, ast.Attribute) and receiver.attr == "producer"
            ):
                found.append(f"{node.lineno}: {ast.unparse(node.func)}")
    return found


def test_only_the_output_module_hands_records_to_the_kafka_producer() -> None:
    """Alerts, dead letters, audit records, snapshots and hand-written changelogs leave
    through streams/output.py, so what a committed offset guarantees is decided there."""
    elsewhere = {
        f"{module} {call}"
        for module, path in ALL_MODULES.items()
        if _top(module) == "streams" and module != "streams.output"
        for call in _producer_calls(path.read_text(encoding="utf-8"))
    }
    assert elsewhere == set()
    assert _producer_calls((ROOT / "streams" / "output.py").read_text(encoding="utf-8")) != []


def test_the_producer_call_finder_sees_each_way_to_produce() -> None:
    source = (
        "async def f(app, topic, client):\n"
        "    await topic.send(value=b'x')\n"
        "    topic.send_soon(value=b'x')\n"
        "    await client.send_and_wait('t', b'x')\n"
        "    app.producer._ensure_producer()\n"
        "    await app.producer.flush()\n"
        "    app.producer.buffer.size\n"
        "    await client.partitions_for('t')\n"
    )
    # every line but the last two: reading the buffer and looking up partitions are not producing
    assert sorted(int(call.split(":")[0]) for call in _producer_calls(source)) == [2, 3, 4, 5, 6]
