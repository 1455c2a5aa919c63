"""How the composition root wires settings into the loops: the write fence of each mode,
readiness without a campaign, dataset size hints, stored preemption exposure, the price
refresh interval, and which replica counts decisions."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from structlog.testing import capture_logs

from federator import metrics, policy
from federator.core.decisions import DecisionKind
from federator.core.policy import DecisionPolicy
from federator.daemon import assembly, loops, policy_file, replicas, serving, telling
from federator.federation.federation import PassReport
from federator.prices.preemption import PreemptionLedger
from tests.support.configs import sandbox_config
from tests.unit.test_daemon_decision_events import decision


def config(tmp_path: Path, **edits: Any) -> policy.FederatorConfig:
    raw = sandbox_config()
    for section, values in edits.items():
        raw.setdefault(section, {}).update(values)
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(raw))
    return policy.load_policy(path)


@pytest.mark.parametrize(
    ("elect", "dry_run", "once", "writes"),
    [
        (True, False, False, False),  # a replica writes once the campaign renews
        (True, False, True, True),  # --once runs no election: open however slow the sync
        (True, True, True, False),  # a dry run never writes
        (False, False, False, True),
        (False, True, False, False),
    ],
)
def test_the_write_fence_of_each_mode(
    tmp_path: Path, elect: bool, dry_run: bool, once: bool, writes: bool
) -> None:
    settings = config(tmp_path, leader_election={"enabled": elect})
    fence = assembly.write_fence(settings, dry_run=dry_run, once=once)
    assert fence.allows_writes() is writes


def test_a_dry_run_with_leader_election_on_is_ready_without_knowing_the_leader(
    tmp_path: Path,
) -> None:
    settings = config(tmp_path, leader_election={"enabled": True})
    onprem = settings.onprem_cluster.name
    parts: Any = SimpleNamespace(
        holder=SimpleNamespace(config=settings),
        clusters={onprem: SimpleNamespace(health=SimpleNamespace(up=True, problem=""))},
        onprem=SimpleNamespace(synced=True),
        fence=assembly.write_fence(settings, dry_run=True, once=False),
    )
    dry = serving.readiness(parts, serving.runs_election(settings, dry_run=True))
    assert dry.ready
    campaigning = serving.readiness(parts, serving.runs_election(settings, dry_run=False))
    assert not campaigning.ready, "a campaigning replica waits until it has read the lease"


def test_a_dataset_size_hint_is_given_to_the_loop_in_bytes(tmp_path: Path) -> None:
    raw = sandbox_config()
    raw["datasets"][0]["size_hint"] = "2Ti"
    raw["datasets"][1].pop("size_hint", None)
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(raw))
    holder: Any = SimpleNamespace(config=policy.load_policy(path))
    name = raw["datasets"][0]["name"]
    assert assembly._size_hint(holder, name) == 2 * 1024**4
    assert assembly._size_hint(holder, raw["datasets"][1]["name"]) is None
    assert assembly._size_hint(holder, "no-such-dataset") is None


@pytest.mark.parametrize(("per_node", "hours"), [(False, 100.0), (True, 250.0)])
def test_stored_exposure_is_what_the_offer_rate_already_holds(per_node: bool, hours: float) -> None:
    ledger = PreemptionLedger().record(
        "cloud-a/a100-spot", preemptions=3, job_hours=100.0, node_hours=250.0, gpu_hours=0.0, at=0.0
    )
    parts: Any = SimpleNamespace(
        evidence_at_start=ledger,
        holder=SimpleNamespace(decision_policy=DecisionPolicy(preemption_rate_per_node=per_node)),
    )
    assert assembly._stored_exposure_h(parts, ("cloud-a", "a100-spot")) == hours
    assert assembly._stored_exposure_h(parts, ("cloud-b", "h100-spot")) == 0.0


def test_the_prior_weight_of_the_policy_file_reaches_the_loop(tmp_path: Path) -> None:
    settings = config(tmp_path, prices={"prior_weight": "36h"})
    assert assembly.federation_settings(settings).preemption_prior_strength_h == 36.0


async def test_prices_are_refreshed_at_the_policy_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = config(tmp_path, prices={"refresh_interval": "3s"})
    slept: list[float] = []
    stop = asyncio.Event()

    async def sleep(seconds: float, _: asyncio.Event) -> bool:
        slept.append(seconds)
        return len(slept) < 3

    async def refresh(*_: object) -> dict[str, object]:
        return {}

    monkeypatch.setattr(loops, "_sleep", sleep)
    monkeypatch.setattr(loops, "refresh_all", refresh)
    parts: Any = SimpleNamespace(
        holder=SimpleNamespace(config=settings), offers=SimpleNamespace(pricings=())
    )
    await loops.refresh_prices(parts, stop)
    assert slept == [3.0, 3.0, 3.0]


def counted(kind: str) -> float:
    value = metrics.REGISTRY.get_sample_value("federator_decisions_total", {"decision": kind})
    return value or 0.0


@pytest.mark.parametrize(("leader", "step"), [(True, 1.0), (False, 0.0)])
def test_only_the_replica_that_acts_counts_decisions(leader: bool, step: float) -> None:
    from tests.unit.test_daemon_decision_events import PartsLike, onprem_with

    parts: Any = PartsLike(onprem_with("train"), leader=leader, dry_run=False)
    parts.decisions = SimpleNamespace(record=lambda *_: None)
    before = counted(str(DecisionKind.STAY))
    telling.record_decisions(parts, PassReport(now=0.0, decisions=(decision("team-a/train"),)))
    assert counted(str(DecisionKind.STAY)) - before == step


async def test_evidence_that_cannot_be_loaded_is_said_and_the_priors_are_used() -> None:
    class Broken:
        async def load(self) -> PreemptionLedger:
            raise RuntimeError("ConfigMap federator/preemptions is corrupt: delete it")

    parts: Any = SimpleNamespace(evidence_store=Broken(), evidence_at_start=PreemptionLedger())
    with capture_logs() as logs:
        ledger = await serving.load_evidence(parts)
    assert ledger == PreemptionLedger()
    [warning] = [entry for entry in logs if entry["event"] == "preemption_evidence_not_loaded"]
    assert warning["log_level"] == "warning"
    assert warning["error"] == "RuntimeError: ConfigMap federator/preemptions is corrupt: delete it"
    assert "exc_info" not in warning, "one line, not a traceback: the cause is usually logged"


def test_the_budget_warning_counter_of_every_configured_cap_starts_at_0(tmp_path: Path) -> None:
    raw = sandbox_config()
    raw["budgets"] = {"usd_per_day": 500, "usd_per_hour": 50}
    raw["tenants"][0]["budget_usd_per_month"] = 1000
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(raw))
    settings = policy.load_policy(path)
    policy_file.initialise_metrics(settings)
    tenant = raw["tenants"][0]["name"]
    for scope in ("hour", "day", f"tenant:{tenant}"):
        value = metrics.REGISTRY.get_sample_value(
            "federator_budget_warnings_total", {"scope": scope}
        )
        assert value is not None, scope


def test_the_failed_sync_counter_of_every_replica_the_policy_gives_starts_at_0(
    tmp_path: Path,
) -> None:
    """So that `increase(federator_sync_failures_total[1h])` sees a replica's first failure.
    The dataset gets a name of its own: the metrics registry is shared by every test of the
    process, and other tests count failures of the sandbox's datasets."""
    raw = sandbox_config()
    raw["datasets"][0]["name"] = "wiring-only-set"
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(raw))
    settings = policy.load_policy(path)
    policy_file.initialise_metrics(settings)
    pairs = [pair for pair in replicas.replica_pairs(settings) if pair[0] == "wiring-only-set"]
    assert pairs, "the policy gives the dataset replicas"
    for dataset, cluster in pairs:
        value = metrics.REGISTRY.get_sample_value(
            "federator_sync_failures_total", {"dataset": dataset, "cluster": cluster}
        )
        assert value == 0.0, (dataset, cluster)
