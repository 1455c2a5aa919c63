"""A loaded file dumps back to YAML that loads into the same configuration.

This is what lets tools rewrite a policy (say, a UI or a migration script) without changing
its meaning: durations and sizes dump in the file's own notation, not as Python objects.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from federator.policy import FederatorConfig, load_policy, parse_policy
from federator.policy.units import format_duration, format_size, parse_duration, parse_size

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = [REPO / "config" / "sandbox.yaml", REPO / "config" / "federator.example.yaml"]
RAW = {path: yaml.safe_load(path.read_text()) for path in EXAMPLES}
# Sections with defaults that a file may leave out entirely.
OPTIONAL_SECTIONS = [
    "burst_rules",
    "burst",
    "cost",
    "prices",
    "budgets",
    "tenants",
    "registry",
    "sync",
    "server",
    "leader_election",
    "garbage_collection",
]


def dumped(config: FederatorConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json", exclude_none=True), sort_keys=False)


durations = st.integers(min_value=1, max_value=10 * 86400).map(lambda s: f"{s}s")
sizes = st.tuples(st.integers(1, 4096), st.sampled_from(["Ki", "Mi", "Gi", "MB", "GB", "TB"]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    path=st.sampled_from(EXAMPLES),
    dropped=st.sets(st.sampled_from(OPTIONAL_SECTIONS)),
    cooldown=durations,
    part=sizes,
)
def test_example_files_round_trip(
    path: Path, dropped: set[str], cooldown: str, part: tuple[int, str]
) -> None:
    raw = {k: v for k, v in RAW[path].items() if k not in dropped}
    raw.setdefault("burst", {})["cooldown"] = cooldown
    raw.setdefault("sync", {})["part_size"] = f"{part[0]}{part[1]}"
    if "registry" in dropped:
        raw.pop("datasets", None)
        raw.pop("residency", None)
    first = parse_policy(yaml.safe_dump(raw), str(path), base_dir=path.parent)
    second = parse_policy(dumped(first), "dumped.yaml", base_dir=path.parent)
    assert second == first


def test_the_dump_writes_durations_and_sizes_as_people_do() -> None:
    text = dumped(load_policy(EXAMPLES[0]))
    assert "min_wait: 10s" in text
    assert "part_size: 8Mi" in text


@given(st.integers(min_value=0, max_value=10**9))
def test_duration_format_parses_back(millis: int) -> None:
    from datetime import timedelta

    value = timedelta(milliseconds=millis)
    assert parse_duration(format_duration(value)) == value


@given(st.integers(min_value=0, max_value=2**60))
def test_size_format_parses_back(count: int) -> None:
    assert parse_size(format_size(count)) == count
