"""Schema evolution: a new version must read every older one; released files stay as released."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from lienthong.cli import main
from schemas.evolution import LOCK_FILE, check_all, release
from schemas.registry import AVRO_DIR

TYPE = "WelfarePaid"


def _v1() -> dict[str, Any]:
    return json.loads((AVRO_DIR / TYPE / "v1.avsc").read_text())


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A schema root holding the real Envelope v1 and WelfarePaid v1, nothing else."""
    for name in ("Envelope", TYPE):
        (tmp_path / name).mkdir()
        shutil.copy(AVRO_DIR / name / "v1.avsc", tmp_path / name / "v1.avsc")
    return tmp_path


def _write_v2(root: Path, schema: dict[str, Any]) -> None:
    (root / TYPE / "v2.avsc").write_text(json.dumps(schema, indent=2))


def _field(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in schema["fields"] if f["name"] == name)


def test_the_repository_schemas_have_no_problems() -> None:
    assert check_all() == []


def test_every_repository_schema_file_is_released() -> None:
    locked = json.loads((AVRO_DIR / LOCK_FILE).read_text())
    files = {p.relative_to(AVRO_DIR).as_posix() for p in AVRO_DIR.glob("*/v*.avsc")}
    assert files == set(locked)


def test_cli_schemas_check_exits_zero_on_the_repository() -> None:
    result = CliRunner().invoke(main, ["schemas", "check"])
    assert result.exit_code == 0, result.output
    assert "schemas: ok" in result.output


def test_new_optional_field_with_default_is_compatible(root: Path) -> None:
    v2 = _v1()
    v2["fields"].append({"name": "program_code", "type": ["null", "string"], "default": None})
    _write_v2(root, v2)
    assert check_all(root) == []


def test_new_enum_symbol_is_compatible(root: Path) -> None:
    v2 = _v1()
    _field(v2, "channel")["type"]["symbols"].append("E_WALLET")
    _write_v2(root, v2)
    assert check_all(root) == []


def test_int_widened_to_long_and_double_is_compatible(root: Path) -> None:
    v2 = _v1()
    _field(v2, "amount_vnd")["type"] = "double"
    _write_v2(root, v2)
    assert check_all(root) == []


def test_new_field_without_default_is_refused_naming_type_version_and_field(root: Path) -> None:
    v2 = _v1()
    v2["fields"].append({"name": "program_code", "type": "string"})
    _write_v2(root, v2)
    problems = check_all(root)
    assert len(problems) == 1
    assert "WelfarePaid v2 cannot read v1" in problems[0]
    assert "'program_code'" in problems[0] and "without a default" in problems[0]


def test_removed_enum_symbol_without_enum_default_is_refused(root: Path) -> None:
    v2 = _v1()
    _field(v2, "channel")["type"]["symbols"].remove("CASH")
    _write_v2(root, v2)
    problems = check_all(root)
    assert len(problems) == 1
    assert "WelfarePaid v2 cannot read v1" in problems[0]
    assert "'channel'" in problems[0] and "CASH" in problems[0]


def test_removed_enum_symbol_with_enum_default_is_compatible(root: Path) -> None:
    v2 = _v1()
    enum = _field(v2, "channel")["type"]
    enum["symbols"] = ["BANK_ACCOUNT", "OTHER"]
    enum["default"] = "OTHER"
    _write_v2(root, v2)
    assert check_all(root) == []


def test_long_changed_to_string_is_refused(root: Path) -> None:
    v2 = _v1()
    _field(v2, "amount_vnd")["type"] = "string"
    _write_v2(root, v2)
    problems = check_all(root)
    assert len(problems) == 1
    assert "WelfarePaid v2 cannot read v1" in problems[0]
    assert "'amount_vnd'" in problems[0] and "long" in problems[0] and "string" in problems[0]


def test_nested_envelope_field_change_is_refused_with_its_path(root: Path) -> None:
    envelope = json.loads((root / "Envelope" / "v1.avsc").read_text())
    _field(envelope, "ward_code")["type"] = "int"
    (root / "Envelope" / "v2.avsc").write_text(json.dumps(envelope))
    v2 = _v1()
    v2["envelope_version"] = 2
    _write_v2(root, v2)
    problems = check_all(root)
    assert any("WelfarePaid v2 cannot read v1" in p and "'envelope.ward_code'" in p for p in problems)
    assert any("Envelope v2 cannot read v1" in p and "'ward_code'" in p for p in problems)


def test_every_older_version_is_checked_not_only_the_previous(root: Path) -> None:
    v2 = _v1()
    _field(v2, "amount_vnd")["type"] = "double"
    _write_v2(root, v2)
    v3 = copy.deepcopy(v2)
    _field(v3, "amount_vnd")["type"] = "float"  # reads v2's double? no; reads v1's long? yes
    (root / TYPE / "v3.avsc").write_text(json.dumps(v3))
    problems = check_all(root)
    assert [p.split(":")[0] for p in problems] == ["WelfarePaid v3 cannot read v2"]


def test_union_branch_removed_is_refused(root: Path) -> None:
    v2 = _v1()
    v2["fields"].append({"name": "note", "type": ["null", "string"], "default": None})
    _write_v2(root, v2)
    v3 = copy.deepcopy(v2)
    _field(v3, "note")["type"] = "string"
    del _field(v3, "note")["default"]
    (root / TYPE / "v3.avsc").write_text(json.dumps(v3))
    problems = check_all(root)
    assert any("WelfarePaid v3 cannot read v2" in p and "'note'" in p and "null" in p for p in problems)


def test_identical_versions_sharing_a_fingerprint_are_refused(root: Path) -> None:
    v2 = _v1()
    v2["doc"] = "Same schema, new words."
    _write_v2(root, v2)
    problems = check_all(root)
    assert len(problems) == 1
    assert "WelfarePaid v2" in problems[0] and "fingerprint" in problems[0]


def test_a_gap_in_version_numbers_is_refused(root: Path) -> None:
    v3 = _v1()
    v3["fields"].append({"name": "note", "type": "string", "default": ""})
    (root / TYPE / "v3.avsc").write_text(json.dumps(v3))
    assert any("without gaps" in p for p in check_all(root))


def test_modifying_a_released_file_is_refused(root: Path) -> None:
    assert release(root) == []
    v1 = _v1()
    _field(v1, "amount_vnd")["default"] = 0
    (root / TYPE / "v1.avsc").write_text(json.dumps(v1))
    problems = check_all(root)
    assert problems == [
        (
            "WelfarePaid/v1.avsc: released file modified; add a new version instead "
            "(old messages carry this version's fingerprint)"
        )
    ]


def test_editing_only_docs_of_a_released_file_is_allowed(root: Path) -> None:
    assert release(root) == []
    v1 = _v1()
    v1["doc"] = "Clearer words for the same contract."
    (root / TYPE / "v1.avsc").write_text(json.dumps(v1))
    assert check_all(root) == []


def test_deleting_a_released_file_is_refused(root: Path) -> None:
    v2 = _v1()
    v2["fields"].append({"name": "note", "type": "string", "default": ""})
    _write_v2(root, v2)
    assert release(root) == []
    (root / TYPE / "v2.avsc").unlink()
    assert any("WelfarePaid/v2.avsc: released version deleted" in p for p in check_all(root))


def test_release_locks_new_files_and_keeps_old_digests(root: Path) -> None:
    assert release(root) == []
    before = json.loads((root / LOCK_FILE).read_text())
    v2 = _v1()
    v2["fields"].append({"name": "note", "type": "string", "default": ""})
    _write_v2(root, v2)
    assert release(root) == []
    after = json.loads((root / LOCK_FILE).read_text())
    assert set(after) == set(before) | {"WelfarePaid/v2.avsc"}
    assert {k: after[k] for k in before} == before


def test_release_refuses_to_lock_an_incompatible_version(root: Path) -> None:
    v2 = _v1()
    v2["fields"].append({"name": "program_code", "type": "string"})
    _write_v2(root, v2)
    assert release(root) != []
    assert not (root / LOCK_FILE).exists()
