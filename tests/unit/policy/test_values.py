"""Values that parse but mean nothing are refused: infinite numbers, booleans where a number
belongs, a zero interval or speed, a duration too long for any clock, a duplicated name's
follow-on errors. Each check walks every model, so a field added later is covered too."""

from __future__ import annotations

import typing
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from federator.policy import FederatorConfig, json_schema, parse_policy
from federator.policy.units import DURATION_PATTERN, SIZE_PATTERN, parse_duration, parse_size
from tests.unit.policy.helpers import edited, errors_of


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


def _numeric_fields() -> Iterator[tuple[type[BaseModel], str, type, bool]]:
    """(model, field, int or float, whether the numbers are the values of a mapping)."""
    for model in _models().values():
        for name, field in model.model_fields.items():
            annotation: Any = field.annotation
            in_mapping = typing.get_origin(annotation) is dict
            if in_mapping:
                annotation = typing.get_args(annotation)[1]
            members = typing.get_args(annotation) or (annotation,)
            for member in members:
                base = typing.get_args(member)[0] if hasattr(member, "__metadata__") else member
                if base in (int, float) or (name == "version" and model is FederatorConfig):
                    yield model, name, float if base is float else int, in_mapping
                    break


NUMERIC = list(_numeric_fields())


def _errors_at(model: type[BaseModel], name: str, value: object, in_mapping: bool) -> list[str]:
    data = {name: {"some-key": value} if in_mapping else value}
    loc: tuple[str, ...] = (name, "some-key") if in_mapping else (name,)
    try:
        model.model_validate(data)
    except ValidationError as error:
        return [e["msg"] for e in error.errors() if e["loc"] == loc]
    return []


def test_no_float_field_takes_an_infinite_number() -> None:
    names = {f"{model.__name__}.{name}" for model, name, _, _ in NUMERIC}
    assert {"FixedPrice.usd_per_gpu_hour", "Pool.max_gpus", "Cost.gpu_speed"} <= names
    assert len(names) >= 35  # the walk found the numeric fields
    taking = [
        f"{model.__name__}.{name}"
        for model, name, kind, in_mapping in NUMERIC
        if kind is float and not _errors_at(model, name, float("inf"), in_mapping)
    ]
    assert taking == []


@pytest.mark.parametrize("value", [True, False])
def test_no_numeric_field_takes_a_boolean(value: bool) -> None:
    taking = [
        f"{model.__name__}.{name}"
        for model, name, _, in_mapping in NUMERIC
        if not _errors_at(model, name, value, in_mapping)
    ]
    assert taking == []


ZERO_REFUSED = {
    "AwsSpotPrice.max_age",
    "AwsSpotPrice.refresh_interval",
    "Burst.decision_interval",
    "Cluster.transfer_bandwidth_per_second",
    "Cluster.unreachable_timeout",
    "Cost.default_checkpoint_interval",
    "Cost.default_runtime",
    "GarbageCollection.interval",
    "LeaderElection.lease_duration",
    "LeaderElection.renew_deadline",
    "LeaderElection.retry_period",
    "Prices.max_price_age",
    "Prices.prior_weight",
    "Prices.refresh_interval",
    "Queue.default_runtime",
    "Registry.checkpoint_sync_interval",
    "Replacement.start_timeout",
    "Sync.abandoned_upload_age",
    "Sync.interval",
    "Sync.part_size",
}
"""Intervals, periods, timeouts, speeds, runtimes: zero would spin a loop, divide by zero or
skip every price. Every other duration or size (a wait, a grace period, a cooldown, a
threshold, a dataset's size) may be zero."""


def _duration_and_size_fields() -> Iterator[tuple[str, str, str]]:
    schema = json_schema()
    models = {"FederatorConfig": schema, **schema["$defs"]}
    for model, spec in models.items():
        for name, field in spec.get("properties", {}).items():
            for option in field.get("anyOf", [field]):
                if option.get("pattern") in (DURATION_PATTERN, SIZE_PATTERN):
                    zero = "0s" if option["pattern"] == DURATION_PATTERN else "0B"
                    yield model, name, zero


def test_zero_is_refused_by_intervals_timeouts_and_speeds_only() -> None:
    models = _models()
    fields = list(_duration_and_size_fields())
    assert len(fields) >= 33
    refused = {
        f"{model}.{name}"
        for model, name, zero in fields
        if _errors_at(models[model], name, zero, in_mapping=False)
    }
    assert refused == ZERO_REFUSED
    messages = [_errors_at(models["Burst"], "decision_interval", "0s", in_mapping=False)]
    messages.append(_errors_at(models["Sync"], "part_size", "0B", in_mapping=False))
    assert messages == [
        ["Value error, must be longer than 0s"],
        ["Value error, must be more than 0B"],
    ]
    # ... and every default, as the file would write it, is within its field's bounds
    for model, name, _ in fields:
        default = json_schema()["$defs"].get(model, {}).get("properties", {}).get(name, {})
        if default.get("default") is not None:
            assert not _errors_at(models[model], name, default["default"], False), name


PRICE = "        price: {source: fixed, usd_per_gpu_hour: 1.5}"
CASES = [
    (
        (PRICE, PRICE.replace("1.5", ".inf")),
        15,
        "clusters[1].pools[0].price.usd_per_gpu_hour",
        "must be a finite number (found inf)",
    ),
    (
        ("        max_gpus: 16", "        max_gpus: true"),
        14,
        "clusters[1].pools[0].max_gpus",
        "expected a number here, found true (a YAML boolean)",
    ),
    (
        ("    pools:", "    transfer_bandwidth_per_second: 0B\n    pools:"),
        9,
        "clusters[1].transfer_bandwidth_per_second",
        "must be more than 0B (found '0B')",
    ),
]


@pytest.mark.parametrize(("edit", "at", "path", "message"), CASES, ids=[c[2] for c in CASES])
def test_a_meaningless_value_is_reported_at_its_line(
    edit: tuple[str, str], at: int, path: str, message: str
) -> None:
    errors = errors_of(edited(edit))
    assert [(e.line, e.field_path) for e in errors] == [(at, path)]
    assert message in errors[0].message


@pytest.mark.parametrize(
    ("section", "path", "message"),
    [
        (
            "burst: {decision_interval: 99999999999999999d}",
            "burst.decision_interval",
            "'99999999999999999d' is too long; a duration is at most 36500d (100 years)",
        ),
        ("burst: {decision_interval: 0s}", "burst.decision_interval", "must be longer than 0s"),
        ("prices: {max_price_age: 0s}", "prices.max_price_age", "must be longer than 0s"),
        (
            "registry: {uri: 's3://models/r/', checkpoint_sync_interval: 0s}",
            "registry.checkpoint_sync_interval",
            "must be longer than 0s (found '0s')",
        ),
        ("budgets: {usd_per_hour: true}", "budgets.usd_per_hour", "found true (a YAML boolean)"),
        (
            "burst: {replacement: {max_replacements: false}}",
            "burst.replacement.max_replacements",
            "found false (a YAML boolean)",
        ),
        (
            "cost: {gpu_speed: {H100: .inf}}",
            "cost.gpu_speed.H100",
            "must be a finite number (found inf)",
        ),
        (
            # 1e308 passed and overflowed to inf once multiplied by a job's GPUs.
            "cost: {value_of_waiting_usd_per_gpu_hour: 1e308}",
            "cost.value_of_waiting_usd_per_gpu_hour",
            "less than or equal to 1000000",
        ),
        (
            "cost: {priority_multipliers: [{min_priority: 1, multiplier: 1e300}]}",
            "cost.priority_multipliers[0].multiplier",
            "less than or equal to 1000000",
        ),
        (
            "sync: {part_size: 99999999999999999999999PB}",
            "sync.part_size",
            "is too large; a size is at most 1024Pi",
        ),
    ],
)
def test_an_appended_section_is_reported_at_its_line(section: str, path: str, message: str) -> None:
    errors = errors_of(edited(append=section + "\n"))
    assert [(e.line, e.field_path) for e in errors] == [(19, path)]
    assert message in errors[0].message


def test_numbers_written_as_whole_numbers_or_strings_still_load() -> None:
    config = parse_policy(
        edited(
            (PRICE, PRICE.replace("1.5", "3")),
            append="budgets: {usd_per_hour: 1e3}\nburst: {min_wait: '30m', cooldown: 0s}\n"
            "sync: {delete: {hold_back: 0s}}\n",
        )
    )
    price = config.clusters[1].pools[0].price
    assert price.source == "fixed"
    assert price.usd_per_gpu_hour == 3.0
    assert config.budgets.usd_per_hour == 1000.0
    assert config.burst.min_wait == parse_duration("30m")
    with pytest.raises(ValueError, match="is too long"):
        parse_duration("9" * 400 + "s")  # more digits than a float holds
    assert parse_duration("36500d") == parse_duration("876000h")
    assert parse_size("1024Pi") == 1024**6
    errors = errors_of(edited(append="burst: {min_wait: true}\n"))
    assert [e.field_path for e in errors] == ["burst.min_wait"]


def test_a_duplicate_cluster_name_is_reported_once_without_follow_on_errors() -> None:
    second = (
        "  - name: cloud-a\n"
        "    role: cloud\n"
        "    region: us-west-2\n"
        "    connection: {kubeconfig: kube.yaml, context: cloud-b}\n"
        "    pools:\n"
        "      - {name: h100, gpu_type: H100, gpus_per_node: 8, capacity_type: spot,\n"
        "         max_gpus: 8, price: {source: fixed, usd_per_gpu_hour: 3}}\n"
        "queues:"
    )
    text = edited(
        ("queues:", second),
        append="tenants:\n  - name: t\n    namespaces: [a]\n"
        "    allowed_clusters: [cloud-a, cloud-b]\n"
        "registry:\n  uri: s3://models/registry/\n  staging: {cloud-b: 's3://bb-b/staging/'}\n",
    )
    errors = errors_of(text)
    assert [(e.line, e.field_path, e.message) for e in errors] == [
        (16, "clusters[2].name", "another cluster is already named 'cloud-a'")
    ]
