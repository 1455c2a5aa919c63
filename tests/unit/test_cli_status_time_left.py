"""`federator status` rounds a time still to come UP to the unit it shows, a past time down.

A 10-minute pool block showed as "in 9m" one second after it was set: the time left (9m59s)
was cut down to whole minutes, so the table promised the pool back a minute early. A time
left now reads up to the unit shown ("in 10m"); "ago" keeps rounding down ("9m ago" for
9m59s: it has not been 10 minutes yet).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from federator import policy
from federator.federation.blocks import BlockCause, PoolBlock, PoolBlocks
from tests.support import configs
from tests.unit.test_cli_status import (
    BLOCKS,
    JOBS,
    NOW,
    configmap,
    fleet_of,
    job,
    placed,
    rows,
    shown,
)


@pytest.fixture
def config(tmp_path: Path) -> policy.FederatorConfig:
    return policy.load_policy(configs.offline_sandbox_policy(tmp_path))


def blocked_until(config: policy.FederatorConfig, until: float) -> str:
    """The `until` cell of a pool blocked until `until`."""
    blocks = PoolBlocks({("cloud-a", "a100-spot"): PoolBlock(until, BlockCause.PREEMPTION, "x")})
    fleet = fleet_of(config, {BLOCKS: configmap("blocks.json", blocks.to_json())})
    return rows(shown(fleet))["cloud-a/a100-spot"][1]


@pytest.mark.parametrize(
    ("left_s", "said"),
    [
        (599, "(in 10m)"),  # a 10-minute block, one second after it was set
        (600, "(in 10m)"),  # a whole unit stays as it is
        (601, "(in 11m)"),
        (59.5, "(in 1m)"),  # seconds are rounded up too, to the minute they make
        (3599, "(in 1h00m)"),
        (3601, "(in 1h01m)"),
        (86399, "(in 1d0h)"),
        (86401, "(in 1d1h)"),  # past a day the unit shown is the hour
        (40, "(in 40s)"),
    ],
)
def test_a_pool_block_shows_the_time_left_rounded_up_to_the_unit_shown(
    config: policy.FederatorConfig, left_s: float, said: str
) -> None:
    assert blocked_until(config, NOW + left_s).endswith(said)


def test_a_requeued_job_is_decided_again_in_the_time_left_rounded_up(
    config: policy.FederatorConfig,
) -> None:
    lost = placed(phase="requeued", not_before=NOW + 599)
    fleet = fleet_of(config, {JOBS: {"items": [job("lost", "team-b", lost, "Preempted")]}})
    assert rows(shown(fleet))["team-b/lost"][4] == "Preempted; requeued, decided again in 10m"


def test_a_past_time_keeps_rounding_down(config: policy.FederatorConfig) -> None:
    fleet = fleet_of(
        config, {JOBS: {"items": [job("train", "team-a", placed(placed_at=NOW - 599))]}}
    )
    assert rows(shown(fleet))["team-a/train"][5].endswith("(9m ago)")


def test_a_requeued_job_never_decided_again_reads_forever(
    config: policy.FederatorConfig,
) -> None:
    """An infinite time left (a record hand-edited to `Infinity`) is shown, not a crash."""
    lost = placed(phase="requeued", not_before=float("inf"))
    fleet = fleet_of(config, {JOBS: {"items": [job("lost", "team-b", lost, "Preempted")]}})
    assert rows(shown(fleet))["team-b/lost"][4] == "Preempted; requeued, decided again in forever"
