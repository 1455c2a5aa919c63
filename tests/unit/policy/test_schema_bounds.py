"""The JSON Schema refuses a zero interval, timeout or speed where the models do, so an editor
flags `decision_interval: 0s` (or `0h0m`, `0.0s`, `0Mi`) before `federator validate` does."""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import BaseModel, ValidationError

from federator.policy import FederatorConfig, json_schema
from federator.policy.jsonschema import field_bounds

REPO = Path(__file__).resolve().parents[3]

DURATIONS = ["0s", "0m", "0h0m", "0.0s", "00ms", "0d0h0m0s0ms", "0.000h"]
DURATIONS += ["1s", "0h1m", "0.5s", "0s1ms", "90s", "2h30m", "1d"]
SIZES = ["0B", "0Mi", "0.0Gi", "0 Ki", "000TB", "1B", "0.5Ki", "64Mi", "2 TB"]


def _models() -> dict[str, type[BaseModel]]:
    found: dict[str, type[BaseModel]] = {}
    pending: list[object] = [FederatorConfig]
    while pending:
        item = pending.pop()
        if isinstance(item, type) and issubclass(item, BaseModel):
            if item.__name__ not in found:
                found[item.__name__] = item
                pending.extend(field.annotation for field in item.model_fields.values())
        else:
            pending.extend(typing.get_args(item))
    return found


def _model_takes(model: type[BaseModel], name: str, text: str) -> bool:
    try:
        model.model_validate({name: text})
    except ValidationError as error:
        return not any(e["loc"] == (name,) for e in error.errors())
    return True


def _schema_takes(field: dict[str, Any], text: str) -> bool:
    return jsonschema.Draft202012Validator(field).is_valid(text)


def _bounded_fields() -> list[tuple[str, str, str]]:
    return [
        (model, name, bound)
        for model, bounds in field_bounds().items()
        for name, bound in bounds.items()
    ]


def test_every_bounded_field_is_found() -> None:
    bounds = {f"{model}.{name}": bound for model, name, bound in _bounded_fields()}
    assert bounds["Burst.decision_interval"] == "> 0s"
    assert bounds["Sync.part_size"] == "> 0B"
    assert len(bounds) >= 19


@pytest.mark.parametrize(("model", "name", "bound"), _bounded_fields())
def test_the_schema_takes_exactly_what_the_model_takes(model: str, name: str, bound: str) -> None:
    schema = json_schema()
    field = {"FederatorConfig": schema, **schema["$defs"]}[model]["properties"][name]
    texts = DURATIONS if bound == "> 0s" else SIZES
    verdicts = {
        text: (_schema_takes(field, text), _model_takes(_models()[model], name, text))
        for text in texts
    }
    assert {text: s for text, (s, m) in verdicts.items() if s != m} == {}
    assert not verdicts[texts[0]][0]  # the zero form is refused, not everything taken


def test_a_wait_or_a_threshold_of_zero_is_still_valid_in_the_schema() -> None:
    properties = json_schema()["$defs"]["Burst"]["properties"]
    assert _schema_takes(properties["min_wait"], "0s")
    assert _schema_takes(properties["cooldown"], "0h0m")
    sync = json_schema()["$defs"]["Sync"]["properties"]
    assert _schema_takes(sync["multipart_threshold"], "0B")


def test_editors_refuse_a_zero_interval_in_the_committed_schema() -> None:
    schema = json.loads((REPO / "config" / "federator.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    data = yaml.safe_load((REPO / "config" / "sandbox.yaml").read_text())
    data["burst"]["decision_interval"] = "0h0m"
    data["burst"]["min_wait"] = "0s"
    data["sync"]["part_size"] = "0Mi"
    paths = sorted(list(e.absolute_path) for e in validator.iter_errors(data))
    assert paths == [["burst", "decision_interval"], ["sync", "part_size"]]
