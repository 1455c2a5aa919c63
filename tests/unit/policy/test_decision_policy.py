"""The policy file becomes the decision core's `DecisionPolicy`, knob by knob."""

from __future__ import annotations

from pathlib import Path

from federator.core.policy import AtCap, DecisionPolicy, Strategy
from federator.policy import load_policy, parse_policy, to_decision_policy
from tests.unit.policy.helpers import BASE, edited

REPO = Path(__file__).resolve().parents[3]


def test_the_example_file_sets_every_group_of_knobs() -> None:
    policy = to_decision_policy(load_policy(REPO / "config" / "federator.example.yaml"))
    assert policy.strategy is Strategy.FEDERATOR
    assert policy.onprem_usd_per_gpu_hour == 0.6
    assert policy.value_of_time_usd_per_gpu_hour == 2.5
    assert policy.value_of_time_usd_per_job_hour == 1.0
    assert policy.queue_value_of_time_usd_per_gpu_hour == {"gpu-research": 3.0}
    assert policy.priority_value_multipliers == ((1000, 4.0),)
    assert policy.burst_margin_fraction == 0.15
    assert policy.burst_margin_usd == 5
    assert policy.min_pending_before_burst_s == 600
    assert policy.default_checkpoint_interval_s == 1800
    assert policy.checkpoint_write_s == 45
    assert policy.restart_overhead_s == 300
    assert policy.gpu_speed == {"A100": 1.0, "H100": 2.2}
    assert policy.deadline_miss_penalty_usd == 500
    assert policy.budgets.max_usd_per_hour == 400
    assert policy.budgets.max_usd_per_day == 6000
    assert policy.budgets.tenant_max_usd_per_month == {"vision": 40000, "nlp": 25000}
    assert policy.budgets.default_tenant_max_usd_per_month == 10000
    assert policy.budgets.at_cap is AtCap.STAY
    assert policy.caps.max_bursted_jobs == 60
    assert policy.caps.max_bursted_gpus == 320
    assert policy.caps.cluster_max_bursted_jobs == {"aws-use1": 40}
    assert policy.caps.cluster_max_bursted_gpus == {"aws-use1": 256, "gcp-usc1": 128}
    assert policy.resident_datasets == ("patient-ct",)
    assert policy.starburst_waiting_budget == 0.25
    assert policy.starburst_runtime_weighted_mean_gpus == 3.13
    assert policy.starburst_max_queue_length == 30
    assert policy.starburst_clip_s == 12 * 3600


def test_tenant_rules_keep_none_as_unrestricted_and_empty_as_nowhere() -> None:
    policy = to_decision_policy(load_policy(REPO / "config" / "federator.example.yaml"))
    vision, nlp, clinical = (policy.tenant_rule(n) for n in ("vision", "nlp", "clinical"))
    assert vision.allowed_clusters == frozenset({"aws-use1", "gcp-usc1"})
    assert vision.burst_allowed
    assert nlp.allowed_clusters == frozenset()  # no restriction by cluster
    assert nlp.allowed_regions == frozenset({"us-central1"})
    assert not clinical.burst_allowed


def test_a_file_without_optional_sections_gets_the_cores_neutral_defaults() -> None:
    policy = to_decision_policy(parse_policy(BASE))
    defaults = DecisionPolicy()
    assert policy.budgets == defaults.budgets
    assert policy.tenants == {}
    assert policy.resident_datasets == ()
    assert policy.starburst_clip_s == defaults.starburst_clip_s
    assert policy.runtime_cv_by_source == defaults.runtime_cv_by_source


def test_every_policy_name_maps_to_a_core_strategy() -> None:
    expected = {
        "cost-model": Strategy.FEDERATOR,
        "starburst": Strategy.STARBURST,
        "never": Strategy.NEVER,
        "always-on-demand": Strategy.ALWAYS,
        "greedy-spot": Strategy.GREEDY_SPOT,
    }
    for name, strategy in expected.items():
        config = parse_policy(edited(append=f"burst: {{policy: {name}}}\n"))
        assert to_decision_policy(config).strategy is strategy


def test_no_checkpoint_default_and_hold_at_cap() -> None:
    text = edited(append="cost: {default_checkpoint_interval: null}\nbudgets: {at_cap: hold}\n")
    policy = to_decision_policy(parse_policy(text))
    assert policy.default_checkpoint_interval_s is None
    assert policy.budgets.at_cap is AtCap.HOLD
