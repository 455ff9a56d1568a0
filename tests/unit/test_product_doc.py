"""docs/product.md is the product contract: it names everything a user can rely on.

These tests walk the code's own registries (CLI, OpenAPI, topics, event types,
flag types, KPIs), so adding a command or endpoint without documenting it fails here.
"""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from lienthong.cli import main
from schemas.contracts import SOURCE_OF_EVENT
from schemas.topics import ALL_TOPICS
from streams.api.openapi import openapi_document
from streams.flags import FLAG_TYPES
from streams.kpis import PLAIN_KPIS

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = (ROOT / "docs" / "product.md").read_text(encoding="utf-8")
HINT = "is not named in docs/product.md: document it there (the product contract)"


def _commands(group: click.Group, prefix: str) -> list[str]:
    names = []
    for name, command in group.commands.items():
        names.append(f"{prefix}{name}")
        if isinstance(command, click.Group):
            names += [f"{name} {sub}" for sub in command.commands]
    return names


@pytest.mark.parametrize("command", _commands(main, "lienthong "))
def test_every_command_is_in_the_product_doc(command: str) -> None:
    assert f"`{command}" in PRODUCT or f"{command}`" in PRODUCT, f"{command} {HINT}"


@pytest.mark.parametrize("path", sorted(openapi_document()["paths"]))
def test_every_http_endpoint_is_in_the_product_doc(path: str) -> None:
    assert f"GET {path}`" in PRODUCT, f"{path} {HINT}"


@pytest.mark.parametrize("name", [*ALL_TOPICS, *SOURCE_OF_EVENT, *FLAG_TYPES, *PLAIN_KPIS])
def test_every_topic_event_type_flag_type_and_kpi_is_in_the_product_doc(name: str) -> None:
    assert f"`{name}`" in PRODUCT or f"{name}," in PRODUCT or f", {name}" in PRODUCT, f"{name} {HINT}"


def test_the_readme_links_the_product_doc_and_nothing_outside_the_repository() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(docs/product.md)" in readme
    assert "../" not in readme


def test_the_licence_is_an_spdx_string_the_build_backend_understands() -> None:
    import re
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["license"] == "Apache-2.0"  # the table form prints a deprecation box
    bound = next(r for r in project["build-system"]["requires"] if r.startswith("setuptools"))
    major = int(re.search(r">=(\d+)", bound).group(1))  # type: ignore[union-attr]
    assert major >= 77  # setuptools reads SPDX license strings (PEP 639) from 77 on
