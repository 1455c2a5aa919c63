"""A switch of the policy file takes a YAML boolean and nothing else: pydantic's lax mode would
read `verify_tls: 0` as false and `pull_back: "yes"` as true, and a slip like that silently
turns TLS checking off. The check walks every model, so a switch added later is covered too."""

from __future__ import annotations

import typing
from collections.abc import Iterator

import pytest
from pydantic import BaseModel, ValidationError

from federator.policy import FederatorConfig, json_schema, parse_policy
from tests.unit.policy.helpers import BASE, edited, errors_of


def _models() -> Iterator[type[BaseModel]]:
    seen: set[str] = set()
    pending: list[object] = [FederatorConfig]
    while pending:
        item = pending.pop()
        if isinstance(item, type) and issubclass(item, BaseModel):
            if item.__name__ not in seen:
                seen.add(item.__name__)
                yield item
                pending.extend(field.annotation for field in item.model_fields.values())
        else:
            pending.extend(typing.get_args(item))


SWITCHES = [
    (model, name)
    for model in _models()
    for name, field in model.model_fields.items()
    if field.annotation is bool
]


def _errors_at(model: type[BaseModel], name: str, value: object) -> list[str]:
    try:
        model.model_validate({name: value})
    except ValidationError as error:
        return [e["msg"] for e in error.errors() if e["loc"] == (name,)]
    return []


def test_the_walk_finds_every_switch() -> None:
    names = {f"{model.__name__}.{name}" for model, name in SWITCHES}
    assert {"ObjectStore.verify_tls", "Burst.pull_back", "CredentialsRef.default_chain"} <= names
    assert len(names) >= 13


@pytest.mark.parametrize("value", [0, 1, 0.0, 1.0, 2, "yes", "no", "true", "false", "1", "0", ""])
def test_no_switch_takes_a_number_or_a_string(value: object) -> None:
    taking = [
        f"{model.__name__}.{name}" for model, name in SWITCHES if not _errors_at(model, name, value)
    ]
    assert taking == []


@pytest.mark.parametrize("value", [True, False])
def test_every_switch_takes_a_boolean(value: bool) -> None:
    refusing = [
        f"{model.__name__}.{name}" for model, name in SWITCHES if _errors_at(model, name, value)
    ]
    assert refusing == []


def test_the_json_schema_still_says_boolean_for_every_switch() -> None:
    schema = json_schema()
    defs = {"FederatorConfig": schema, **schema["$defs"]}
    kinds = {
        f"{model.__name__}.{name}": defs[model.__name__]["properties"][name].get("type")
        for model, name in SWITCHES
    }
    assert set(kinds.values()) == {"boolean"}, kinds


STORE = "    object_store: {credentials: {default_chain: true}, verify_tls: VALUE}"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "expected true or false here, found 0 (a number); write false"),
        ("1", "expected true or false here, found 1 (a number); write true"),
        ("2", "expected true or false here, found 2 (a number); write true or false"),
        ("'yes'", "expected true or false here, found 'yes' (a string); write true, unquoted"),
        ('"false"', "expected true or false here, found 'false' (a string); write false, unquoted"),
        ("enabled", "expected true or false here, found 'enabled' (a string); write true or false"),
        ("", "expected true or false here, found nothing (an empty value); write true or false"),
    ],
)
def test_a_slip_is_reported_at_its_line_with_what_to_write(value: str, message: str) -> None:
    region = "    region: us-east-1"
    errors = errors_of(edited((region, region + "\n" + STORE.replace("VALUE", value))))
    assert [(e.line, e.field_path, e.message) for e in errors] == [
        (8, "clusters[1].object_store.verify_tls", message)
    ]


def test_a_slip_in_an_appended_section_is_reported_once_at_its_line() -> None:
    errors = errors_of(edited(append="burst: {pull_back: 'no', copy_secrets: 1}\n"))
    assert [(e.line, e.field_path) for e in errors] == [
        (19, "burst.pull_back"),
        (19, "burst.copy_secrets"),
    ]


def test_yaml_booleans_in_every_spelling_still_load() -> None:
    text = BASE + "burst: {pull_back: no, copy_config_maps: off, copy_secrets: Yes}\n"
    burst = parse_policy(text, "policy.yaml").burst
    assert (burst.pull_back, burst.copy_config_maps, burst.copy_secrets) == (False, False, True)


@pytest.mark.parametrize(
    ("line", "field", "says"),
    [
        ("burst: {max_bursted_gpus: 1:30}", "burst.max_bursted_gpus", "'1:30'"),
        ("burst: {decision_interval: 1:30}", "burst.decision_interval", "'1:30'"),
    ],
)
def test_a_base_60_number_is_not_read_as_one(line: str, field: str, says: str) -> None:
    """YAML 1.1 read `1:30` as 90: a cap of 90 GPUs was accepted, and a duration was refused
    as "'90' has no unit", a value the user never wrote."""
    errors = errors_of(edited(append=line + "\n"))
    assert [e.field_path for e in errors] == [field]
    assert says in errors[0].message
    assert "'90'" not in errors[0].message
