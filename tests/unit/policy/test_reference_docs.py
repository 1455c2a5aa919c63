"""The committed field reference and JSON Schema are what the models say, and read well."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from federator.policy import json_schema

REPO = Path(__file__).resolve().parents[3]


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_config_docs", REPO / "scripts" / "gen_config_docs.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_config_docs", module)
    spec.loader.exec_module(module)
    return module


def test_the_committed_configuration_reference_is_current() -> None:
    committed = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert committed == generator().render_doc(), (
        "docs/configuration.md is stale: run .venv/bin/python scripts/gen_config_docs.py"
    )


def test_the_committed_json_schema_is_current() -> None:
    committed = (REPO / "config" / "federator.schema.json").read_text(encoding="utf-8")
    assert committed == generator().render_schema(), (
        "config/federator.schema.json is stale: run .venv/bin/python scripts/gen_config_docs.py"
    )


def _fields(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    objects = {"(top level)": schema, **schema["$defs"]}
    return [
        (name, field, spec)
        for name, obj in objects.items()
        for field, spec in obj.get("properties", {}).items()
    ]


def test_every_field_and_object_has_a_description() -> None:
    schema = json_schema()
    missing = [
        f"{name}.{field}"
        for name, field, spec in _fields(schema)
        if len(spec.get("description", "")) < 15
    ]
    assert missing == []
    assert all(len(d.get("description", "")) >= 15 for d in schema["$defs"].values())


def test_every_field_in_the_reference_has_an_example_or_a_section_below() -> None:
    rows = [
        line
        for line in (REPO / "docs" / "configuration.md").read_text().splitlines()
        if line.startswith("| `")
    ]
    assert len(rows) >= 150
    without = [row.split(" | ")[0] for row in rows if row.rstrip().endswith("| — |")]
    assert without == []


def test_every_yaml_snippet_of_the_reference_is_a_valid_file() -> None:
    from federator.policy import parse_policy

    text = (REPO / "docs" / "configuration.md").read_text()
    snippets = [block.split("```", 1)[0] for block in text.split("```yaml\n")[1:]]
    assert snippets
    for snippet in snippets:
        parse_policy(snippet, "docs/configuration.md")


def test_editors_accept_the_committed_examples_and_refuse_a_unitless_duration() -> None:
    import json

    import jsonschema
    import yaml

    schema = json.loads((REPO / "config" / "federator.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    for name in ("sandbox.yaml", "federator.example.yaml"):
        data = yaml.safe_load((REPO / "config" / name).read_text())
        assert [e.message for e in validator.iter_errors(data)] == [], name
    data = yaml.safe_load((REPO / "config" / "sandbox.yaml").read_text())
    data["burst"]["min_wait"] = "15"
    assert [list(e.absolute_path) for e in validator.iter_errors(data)] == [["burst", "min_wait"]]
