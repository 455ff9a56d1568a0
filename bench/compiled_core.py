"""Would compiling the processor's hot core pay? mypyc on a copy, measured beside pure Python.

Issue 16 asks, once the processor is the worker's bottleneck, for its typed core
to be compiled and the gain measured. This compiles the core and the flag rules
with mypyc (shipped with mypy, our type checker) in a temporary copy of the tree
and runs ``bench.profile_processor`` on both, alternating, in one run: a ratio,
since the machine is noisy. Run by hand (``python -m bench.compiled_core``); it
needs gcc and the Python headers. Two changes are made to the copy only, both
needed by mypyc and not by Python: the classes other modules subclass
(``BaseReaction``, ``PartitionState``) must allow interpreted subclasses.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: The processor's core and every rule: what runs per event.
MODULES = (
    "streams/state.py", "streams/stores.py", "streams/counting.py", "streams/clocks.py", "streams/timers.py",
    "streams/reaction.py", "streams/liveness.py", "streams/processor.py", "streams/flags/citizens.py",
    "streams/flags/records.py", "streams/flags/rollups.py", "streams/flags/tallies.py", "streams/flags/dossiers.py",
)
SUBCLASSED = {"streams/reaction.py": "class BaseReaction:", "streams/state.py": "class PartitionState:"}


def compiled_copy(into: Path) -> None:
    for folder in ("streams", "schemas", "hubbase", "connectors", "bench", "lienthong"):
        shutil.copytree(ROOT / folder, into / folder, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    for path, cls in SUBCLASSED.items():
        source = (into / path).read_text()
        source = source.replace(cls, "@mypyc_attr(allow_interpreted_subclasses=True)\n" + cls, 1)
        source = source.replace("from __future__ import annotations\n",
                                "from __future__ import annotations\n\nfrom mypy_extensions import mypyc_attr\n", 1)
        (into / path).write_text(source)
    built = subprocess.run([sys.executable, "-m", "mypyc", *MODULES], cwd=into, capture_output=True, text=True)
    if built.returncode != 0:
        raise SystemExit("mypyc failed:\n" + "\n".join(
            line for line in (built.stdout + built.stderr).splitlines() if "error" in line.lower())[-3000:])


def rate(cwd: Path, args: list[str]) -> float:
    out = subprocess.run([sys.executable, "-m", "bench.profile_processor", *args], cwd=cwd, check=True,
                         capture_output=True, text=True, env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"}).stdout
    found = re.search(r"processor\s+([\d,]+) ev/s, ratio", out)
    assert found is not None, out
    return float(found.group(1).replace(",", ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    workloads = {"single-event messages, groups of 60": ["--events", "20000", "--batch-size", "1", "--group", "60"],
                 "batches of 500": ["--events", "30000", "--batch-size", "500"]}
    with tempfile.TemporaryDirectory(prefix="lienthong-mypyc-") as tmp:
        copy = Path(tmp)
        print("compiling", len(MODULES), "modules with mypyc...", flush=True)
        compiled_copy(copy)
        for name, args in workloads.items():
            pure, compiled = [], []
            for _ in range(options.rounds):
                pure.append(rate(ROOT, [*args, "--repeat", "2"]))
                compiled.append(rate(copy, [*args, "--repeat", "2"]))
            print(f"{name}: pure {max(pure):,.0f} ev/s, compiled {max(compiled):,.0f} ev/s, "
                  f"gain x{max(compiled) / max(pure):.2f} (best of {options.rounds} each)", flush=True)


if __name__ == "__main__":
    main()
