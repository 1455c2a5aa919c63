"""Cost and bursting knobs that used to be accepted and then ignored, or shown nowhere.

BASE has one cloud pool, of gpu_type A100, and 18 lines: appended text starts at line 19.
"""

from __future__ import annotations

import pytest

from federator.core.models import (
    CapacityType,
    DatasetNeed,
    Offer,
    OnPremState,
    PendingJob,
    RunningJob,
    Spend,
)
from federator.core.placements import DecisionKind, decide
from federator.policy import parse_policy, to_decision_policy
from tests.unit.policy.helpers import edited, errors_of

H = 3600.0


@pytest.mark.parametrize("fraction", ["1", "1.5"])
def test_a_margin_fraction_of_one_or_more_is_refused(fraction: str) -> None:
    """At 1 only a free cloud option clears the bar: bursting would be off without a word."""
    (error,) = errors_of(edited(append=f"burst:\n  margin_fraction: {fraction}\n"))
    assert (error.line, error.field_path) == (20, "burst.margin_fraction")
    assert "must be less than 1" in error.message


def test_a_margin_fraction_below_one_is_kept() -> None:
    config = parse_policy(edited(append="burst:\n  margin_fraction: 0.99\n"), "policy.yaml")
    assert to_decision_policy(config).burst_margin_fraction == 0.99


def test_a_residency_reason_is_shown_in_the_reason_of_the_job_it_keeps() -> None:
    text = edited(
        append=(
            "datasets:\n"
            "  - {name: patient-ct, source: 's3://onprem-datasets/patient-ct/'}\n"
            "residency:\n"
            "  - {dataset: patient-ct, reason: 'patient data, GDPR'}\n"
        )
    ).replace(
        "    connection: {kubeconfig: kube.yaml, context: onprem}\n",
        "    connection: {kubeconfig: kube.yaml, context: onprem}\n"
        "    object_store: {credentials: {default_chain: true}}\n",
    )
    policy = to_decision_policy(parse_policy(text, "policy.yaml"))
    job = PendingJob(
        key="ns/scan",
        gpus=8,
        submitted_at=0.0,
        runtime_estimate_s=H,
        datasets=(DatasetNeed("patient-ct", 10**9),),
    )
    onprem = OnPremState(total_gpus=8, free_gpus=0, running=(RunningJob("r", 8, 10 * H),))
    offer = Offer("cloud-a", "a100-spot", "A100", CapacityType.SPOT, 1.5, 16)
    (decision,) = decide([job], onprem, [offer], Spend(), policy, H).decisions
    assert decision.kind is DecisionKind.STAY
    assert decision.reason == (
        "stays on-prem: dataset patient-ct must stay on-prem (patient data, GDPR)"
    )


@pytest.mark.parametrize(
    ("key", "hint"),
    [("a100", "did you mean 'A100'?"), ("A10O", "did you mean 'A100'?"), ("TPU", "")],
)
def test_a_gpu_speed_for_no_pools_gpu_type_is_refused(key: str, hint: str) -> None:
    (error,) = errors_of(edited(append=f"cost:\n  gpu_speed:\n    {key}: 2.0\n"))
    assert (error.line, error.field_path) == (21, f"cost.gpu_speed.{key}")
    assert f"no cloud pool has gpu_type {key!r} (pools' GPU types: A100" in error.message
    assert error.message.endswith(hint)


def test_a_gpu_speed_for_a_pools_gpu_type_is_kept() -> None:
    config = parse_policy(edited(append="cost:\n  gpu_speed: {A100: 1.5}\n"), "policy.yaml")
    assert to_decision_policy(config).gpu_speed == {"A100": 1.5}


def test_two_multipliers_for_one_priority_are_refused() -> None:
    text = edited(
        append=(
            "cost:\n"
            "  priority_multipliers:\n"
            "    - {min_priority: 10, multiplier: 2}\n"
            "    - {min_priority: 100, multiplier: 3}\n"
            "    - {min_priority: 10, multiplier: 4}\n"
        )
    )
    (error,) = errors_of(text)
    assert (error.line, error.field_path) == (23, "cost.priority_multipliers[2].min_priority")
    assert "priority_multipliers[0] already has min_priority 10" in error.message
