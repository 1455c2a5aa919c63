"""Policy knobs that change what the daemon does: each one read, and each one doing what
docs/configuration.md says (burst.min_pending_gpus, burst.cooldown, budgets.warn_at_fraction,
datasets[].sync_before_start, queues[].default_runtime)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import structlog.testing
import yaml

from federator import budgets, metrics, policy
from federator.core.decisions import DecisionKind, Round
from federator.core.models import CapacityType, Offer, RuntimeSource, Spend
from federator.core.policy import DecisionPolicy, Strategy
from federator.daemon import assembly, data_gate, observers, reloading
from federator.federation import Federation
from federator.kube import clients
from federator.kube.watching import object_key
from federator.syncing.replication import ReplicaState
from tests.support.configs import sandbox_config
from tests.unit.kube import objects
from tests.unit.kube.fakes import FakeCloud, FakeOnPrem


def load(tmp_path: Path, edit: Callable[[dict[str, Any]], None]) -> policy.FederatorConfig:
    raw = sandbox_config()
    edit(raw)
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(raw))
    return policy.load_policy(path)


def burst_settings(**values: Any) -> Callable[[dict[str, Any]], None]:
    def edit(raw: dict[str, Any]) -> None:
        raw["burst"].update(values)

    return edit


class Offers:
    def __init__(self, offers: Sequence[Offer]) -> None:
        self.offers = list(offers)

    async def __call__(self) -> Sequence[Offer]:
        return self.offers


SPOT = Offer("cloud-a", "a100-spot", "A100", CapacityType.SPOT, 1.5, 32)


def federation(
    config: policy.FederatorConfig,
    onprem: FakeOnPrem,
    *,
    decide: Callable[..., Round] | None = None,
    strategy: Strategy = Strategy.GREEDY_SPOT,
) -> tuple[Federation, FakeCloud]:
    cloud = FakeCloud("cloud-a", pools={"a100-spot": 32})
    fed = Federation(
        onprem=onprem,
        clouds={"cloud-a": cloud},
        policy=DecisionPolicy(strategy=strategy),
        offers=Offers([SPOT]),
        settings=assembly.federation_settings(config),
        decide=decide,
    )
    return fed, cloud


# ---- burst.min_pending_gpus ------------------------------------------------------------------


async def test_below_min_pending_gpus_every_job_stays_and_says_why(tmp_path: Path) -> None:
    config = load(tmp_path, burst_settings(min_pending_gpus=16))
    onprem = FakeOnPrem(free_gpus=0)
    job = onprem.add("j1", 8)
    fed, cloud = federation(config, onprem)
    report = await fed.run_once(100.0)
    assert [d.kind for d in report.decisions] == [DecisionKind.STAY]
    assert report.decisions[0].reason == (
        "stays on-prem: 8 GPUs wait, bursting starts at 16 (min_pending_gpus)"
    )
    assert job.record is None
    assert cloud.copies == {}


async def test_at_min_pending_gpus_the_cost_model_decides_again(tmp_path: Path) -> None:
    config = load(tmp_path, burst_settings(min_pending_gpus=16))
    onprem = FakeOnPrem(free_gpus=0)
    onprem.add("j1", 8)
    onprem.add("j2", 8)
    fed, cloud = federation(config, onprem)
    report = await fed.run_once(100.0)
    assert [d.kind for d in report.decisions] == [DecisionKind.BURST, DecisionKind.BURST]
    assert len(cloud.copies) == 2


def test_min_pending_gpus_and_cooldown_follow_a_reloaded_policy(tmp_path: Path) -> None:
    config = load(tmp_path, burst_settings(min_pending_gpus=8, cooldown="10m"))
    settings = assembly.federation_settings(config)
    assert (settings.min_pending_gpus, settings.pull_back_after_s) == (8, 600.0)

    @dataclass
    class Holder:
        config: policy.FederatorConfig

    @dataclass
    class Parts:
        holder: Holder
        federation: Any
        clouds: dict[str, Any] = field(default_factory=dict)  # the clouds connected at start

    onprem = FakeOnPrem()
    fed, _ = federation(config, onprem)
    parts = Parts(Holder(load(tmp_path, burst_settings(min_pending_gpus=24, cooldown="1m"))), fed)
    reloading.apply_reloaded(parts)  # type: ignore[arg-type]
    assert (fed.settings.min_pending_gpus, fed.settings.pull_back_after_s) == (24, 60.0)


# ---- burst.cooldown --------------------------------------------------------------------------


async def test_a_placement_is_not_pulled_back_within_the_cooldown(tmp_path: Path) -> None:
    config = load(tmp_path, burst_settings(cooldown="5m", min_pending_gpus=1))
    onprem = FakeOnPrem(free_gpus=0)
    job = onprem.add("j1", 8)
    fed, cloud = federation(config, onprem)
    await fed.run_once(1000.0)
    assert len(cloud.copies) == 1
    onprem.free_gpus = 16  # on-prem has room now; the copy has not started
    await fed.run_once(1000.0 + 299)
    assert len(cloud.copies) == 1, "pulled back within the cooldown"
    assert job.record is not None
    await fed.run_once(1000.0 + 300)
    assert cloud.copies == {}, "pulled back once the cooldown is over"
    assert job.record is None


# ---- budgets.warn_at_fraction ----------------------------------------------------------------


def budget_policy(tmp_path: Path, warn_at: float) -> policy.FederatorConfig:
    def edit(raw: dict[str, Any]) -> None:
        raw["budgets"] = {"usd_per_hour": 100, "usd_per_day": 1000, "warn_at_fraction": warn_at}
        raw["tenants"][1].pop("budget_usd_per_month")  # team-b: the default tenant cap
        raw["budgets"]["default_tenant_usd_per_month"] = 50

    return load(tmp_path, edit)


def test_every_configured_cap_is_measured(tmp_path: Path) -> None:
    config = budget_policy(tmp_path, 0.8)
    spend = Spend(last_hour_usd=85, today_usd=300, tenant_month_usd={"team-b": 10, "team-a": 1})
    caps = {cap.scope: (cap.limit_usd, cap.spent_usd) for cap in budgets.caps_of(config, spend)}
    assert caps == {
        "hour": (100, 85),
        "day": (1000, 300),
        "tenant:team-a": (20000, 1),
        "tenant:team-b": (50, 10),
    }


def gauge(metric: Any, scope: str) -> float:
    return float(metric.labels(scope=scope)._value.get())


def test_crossing_the_warning_line_warns_once_until_spend_falls_back(tmp_path: Path) -> None:
    config = budget_policy(tmp_path, 0.8)
    watch = budgets.BudgetWarnings()
    warned_before = gauge(metrics.BUDGET_WARNINGS, "hour")

    def crossed(last_hour: float) -> list[str]:
        spend = Spend(last_hour_usd=last_hour, today_usd=0)
        return [c.scope for c in watch.observe(budgets.caps_of(config, spend), 0.8)]

    assert crossed(50) == []
    assert gauge(metrics.BUDGET_REMAINING_USD, "hour") == 50
    assert crossed(80) == ["hour"]
    assert gauge(metrics.BUDGET_USED_FRACTION, "hour") == pytest.approx(0.8)
    assert crossed(95) == []  # still over: told already
    assert crossed(75) == []  # under the line but not far enough: no flapping at the line
    assert crossed(81) == []
    assert crossed(60) == []  # a new hour: re-armed
    assert crossed(90) == ["hour"]
    assert gauge(metrics.BUDGET_WARNINGS, "hour") == warned_before + 2


def test_a_follower_keeps_track_of_a_crossing_but_does_not_count_it(tmp_path: Path) -> None:
    """Every replica observes the caps; only the leader's count and log line are the crossing
    (a sum over replicas counted it once per replica), and a follower that then leads does
    not tell the same crossing again."""
    config = budget_policy(tmp_path, 0.8)
    watch = budgets.BudgetWarnings()
    before = gauge(metrics.BUDGET_WARNINGS, "day")
    over = budgets.caps_of(config, Spend(last_hour_usd=0, today_usd=900))
    with structlog.testing.capture_logs() as logged:
        assert [c.scope for c in watch.observe(over, 0.8, telling=False)] == ["day"]
        assert watch.observe(over, 0.8, telling=True) == [], "told already, as a follower"
    assert gauge(metrics.BUDGET_WARNINGS, "day") == before
    assert not [e for e in logged if e["event"] == "budget_warning"]


def test_the_warning_says_scope_spend_cap_and_consequence(tmp_path: Path) -> None:
    cap = budgets.Cap("day", 1000.0, 812.5)
    assert cap.describe(0.8) == (
        "cloud spend in scope day is $812.50 of its $1,000.00 cap (81%, warning at 80%); "
        "bursts stop when a burst would pass the cap"
    )


async def test_the_pass_reports_its_spend_for_the_budget_watch(tmp_path: Path) -> None:
    config = load(tmp_path, burst_settings(min_pending_gpus=1))
    onprem = FakeOnPrem(free_gpus=0)
    onprem.add("j1", 8)
    fed, _ = federation(config, onprem)
    await fed.run_once(1000.0)  # bursts at $1.50/GPU-h
    report = await fed.run_once(1000.0 + 3600)
    assert report.spend is not None
    assert report.spend.last_hour_usd == pytest.approx(8 * 1.5)


# ---- datasets[].sync_before_start ------------------------------------------------------------


@dataclass
class Status:
    ready: bool
    state: ReplicaState = ReplicaState.COPYING
    message: str = ""


class Replicator:
    def __init__(self) -> None:
        self.started: list[tuple[str, str]] = []

    async def ensure_replicated(self, dataset: str, cluster: str) -> Status:
        self.started.append((dataset, cluster))
        return Status(ready=False)  # every copy still running


async def test_only_datasets_with_sync_before_start_hold_the_job(tmp_path: Path) -> None:
    def edit(raw: dict[str, Any]) -> None:
        raw["datasets"][1]["sync_before_start"] = False  # wikitext

    @dataclass
    class Holder:
        config: policy.FederatorConfig

    replicator = Replicator()
    gate = data_gate.DataGate(replicator, None, Holder(load(tmp_path, edit)))  # type: ignore[arg-type]
    assert not (await gate.ensure_replicated("imagenet-mini", "cloud-a")).may_start  # wait
    assert (await gate.ensure_replicated("wikitext", "cloud-a")).may_start  # beside its copy
    assert not (await gate.ensure_replicated("unknown", "cloud-a")).may_start  # unknown: wait
    assert replicator.started == [
        ("imagenet-mini", "cloud-a"), ("wikitext", "cloud-a"), ("unknown", "cloud-a"),
    ]  # fmt: skip  # the copy is started either way


# ---- queues[].default_runtime ----------------------------------------------------------------


def queue_policy(tmp_path: Path) -> policy.FederatorConfig:
    def edit(raw: dict[str, Any]) -> None:
        raw["cost"]["default_runtime"] = "1h"
        raw["queues"] = [
            {"kind": "ClusterQueue", "name": "research", "default_runtime": "3h"},
            {"kind": "LocalQueue", "namespace": "team-a", "name": "team-a",
             "default_runtime": "6h"},
            {"kind": "LocalQueue", "namespace": "team-b", "name": "team-b"},
            {"kind": "Namespace", "name": "legacy", "default_runtime": "30m"},
        ]  # fmt: skip

    return load(tmp_path, edit)


@pytest.mark.parametrize(
    ("namespace", "local_queue", "cluster_queue", "hours"),
    [
        ("team-a", "team-a", "research", 6.0),  # its LocalQueue's, the most specific
        ("team-b", "team-b", None, 1.0),  # a queue without one: cost.default_runtime
        ("team-c", "q", "research", 3.0),  # through its ClusterQueue
        ("legacy", None, None, 0.5),  # a plain Job of a Namespace queue
        ("nowhere", "q", None, 1.0),  # no watched queue at all
    ],
)
def test_the_default_runtime_is_the_most_specific_queue_s(
    tmp_path: Path, namespace: str, local_queue: str | None, cluster_queue: str | None,
    hours: float,
) -> None:  # fmt: skip
    from federator.policy.eligibility import JobFacts, default_runtime

    facts = JobFacts(namespace=namespace, queue=local_queue, cluster_queue=cluster_queue)
    assert default_runtime(queue_policy(tmp_path), facts).total_seconds() == hours * 3600


def local_queue(namespace: str, name: str, cluster_queue: str) -> dict[str, Any]:
    return {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "LocalQueue",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"clusterQueue": cluster_queue},
    }


async def test_waiting_jobs_that_declare_no_runtime_get_their_queue_s(tmp_path: Path) -> None:
    config = queue_policy(tmp_path)
    observer = observers.onprem_observer(config, clients.Cluster("onprem", api=None))  # type: ignore[arg-type]
    declared = objects.job(
        "declared", uid="u-2", annotations={"federator.io/runtime-estimate": "2h"}
    )
    team_c = objects.job("via-cq", namespace="team-c", uid="u-3", labels={
        "kueue.x-k8s.io/queue-name": "q"})  # fmt: skip
    undeclared = objects.job("undeclared", uid="u-1")
    for job in (undeclared, declared, team_c):
        observer.jobs.items[object_key(job)] = job
        workload = objects.workload(job)
        observer.workloads.items[object_key(workload)] = workload
    queue = local_queue("team-c", "q", "research")
    observer.local_queues.items[object_key(queue)] = queue

    view = await observer.snapshot(objects.T0_S + 60)
    runtimes = {
        job.name: (job.spec.runtime_estimate_s, job.spec.runtime_source) for job in view.jobs
    }
    assert runtimes == {
        "undeclared": (6 * 3600, RuntimeSource.DEFAULT),  # LocalQueue team-a/team-a: 6h
        "declared": (2 * 3600, RuntimeSource.ANNOTATION),  # the job's own estimate wins
        "via-cq": (3 * 3600, RuntimeSource.DEFAULT),  # ClusterQueue research: 3h
    }


async def test_running_jobs_that_declare_no_runtime_end_by_their_queue_s(tmp_path: Path) -> None:
    """The remaining time of what runs on-prem sets the wait of what queues behind it."""
    config = queue_policy(tmp_path)  # team-a's LocalQueue: 6h; cost.default_runtime: 1h
    observer = observers.onprem_observer(config, clients.Cluster("onprem", api=None))  # type: ignore[arg-type]
    running = objects.job("runs", uid="u-9", suspend=False)
    declared = objects.job(
        "runs-2h", uid="u-8", suspend=False, annotations={"federator.io/runtime-estimate": "2h"}
    )
    for job in (running, declared):
        observer.jobs.items[object_key(job)] = job
        workload = objects.workload(job, conditions=[objects.condition("QuotaReserved")])
        workload["metadata"]["name"] += job["metadata"]["uid"]
        observer.workloads.items[object_key(workload)] = workload
    cluster_queue = objects.cluster_queue(nominal=16, reserved=8)
    observer.cluster_queues.items[object_key(cluster_queue)] = cluster_queue

    view = await observer.snapshot(objects.T0_S + 3600)  # admitted an hour ago
    remaining = {r.key: r.expected_remaining_s for r in view.state.running}
    assert remaining == {"team-a/runs": 5 * 3600, "team-a/runs-2h": 1 * 3600}


async def test_a_reloaded_policy_s_burst_rules_and_tenants_apply_without_a_restart(
    tmp_path: Path,
) -> None:
    def team_a_queue(raw: dict[str, Any]) -> None:
        raw["queues"] = [{"kind": "LocalQueue", "namespace": "team-a", "name": "team-a"}]

    def never(raw: dict[str, Any]) -> None:
        team_a_queue(raw)
        raw["queues"][0]["burst"] = "never"
        raw["tenants"][0]["name"] = "renamed"

    @dataclass
    class Holder:
        config: policy.FederatorConfig

    holder = Holder(load(tmp_path, team_a_queue))
    observer = observers.onprem_observer(
        holder.config,
        clients.Cluster("onprem", api=None),  # type: ignore[arg-type]
        lambda: holder.config,
    )
    job = objects.job("train", uid="u-1")
    observer.jobs.items[object_key(job)] = job
    workload = objects.workload(job)
    observer.workloads.items[object_key(workload)] = workload

    (before,) = (await observer.snapshot(objects.T0_S)).jobs
    holder.config = load(tmp_path, never)
    (after,) = (await observer.snapshot(objects.T0_S)).jobs
    assert (before.burst_allowed, before.spec.tenant) == (True, "team-a")
    assert (after.burst_allowed, after.spec.tenant) == (False, "renamed")


async def test_burst_rules_see_the_cluster_queue_and_priority_class_of_a_job(
    tmp_path: Path,
) -> None:
    """A job reaching a watched ClusterQueue through an unlisted LocalQueue may burst, and a
    `priority_classes` rule matches Kueue's priority class on its Workload."""

    def edit(raw: dict[str, Any]) -> None:
        raw["queues"] = [{"kind": "ClusterQueue", "name": "research"}]
        raw["burst_rules"] = [{"burst": "deny", "priority_classes": ["urgent"]}]
        raw["tenants"] = []

    observer = observers.onprem_observer(
        load(tmp_path, edit),
        clients.Cluster("onprem", api=None),  # type: ignore[arg-type]
    )
    queue = local_queue("team-c", "q", "research")
    observer.local_queues.items[object_key(queue)] = queue
    for name, priority in (("routine", None), ("urgent-one", "urgent")):
        job = objects.job(
            name, namespace="team-c", uid=f"u-{name}", labels={"kueue.x-k8s.io/queue-name": "q"}
        )
        workload = objects.workload(job)
        if priority:
            workload["spec"]["priorityClassName"] = priority
        observer.jobs.items[object_key(job)] = job
        observer.workloads.items[object_key(workload)] = workload

    view = await observer.snapshot(objects.T0_S)
    assert {job.name: job.burst_allowed for job in view.jobs} == {
        "routine": True,  # through ClusterQueue research, watched
        "urgent-one": False,  # burst_rules[0] denies priority class urgent
    }


# ---- queues[].value_of_waiting_usd_per_gpu_hour ------------------------------------------------


async def test_each_waiting_job_gets_the_value_of_waiting_of_its_own_queue(tmp_path: Path) -> None:
    """Resolved like the default runtime (LocalQueue, its ClusterQueue, the namespace of a
    plain Job), never by a LocalQueue's name alone: team-b has a LocalQueue called team-a too."""

    def edit(raw: dict[str, Any]) -> None:
        raw["cost"]["value_of_waiting_usd_per_gpu_hour"] = 2.0
        raw["queues"] = [
            {"kind": "ClusterQueue", "name": "research", "value_of_waiting_usd_per_gpu_hour": 30},
            {"kind": "LocalQueue", "namespace": "team-a", "name": "team-a",
             "value_of_waiting_usd_per_gpu_hour": 10},
            {"kind": "LocalQueue", "namespace": "team-b", "name": "team-a"},
            {"kind": "Namespace", "name": "legacy", "value_of_waiting_usd_per_gpu_hour": 20},
        ]  # fmt: skip

    config = load(tmp_path, edit)
    observer = observers.onprem_observer(config, clients.Cluster("onprem", api=None))  # type: ignore[arg-type]
    label = "kueue.x-k8s.io/queue-name"
    queued = [
        objects.job("own", uid="u-1", labels={label: "team-a"}),
        objects.job("same-name", namespace="team-b", uid="u-2", labels={label: "team-a"}),
        objects.job("via-cq", namespace="team-c", uid="u-3", labels={label: "q"}),
    ]
    for job in queued:
        observer.jobs.items[object_key(job)] = job
        workload = objects.workload(job)
        observer.workloads.items[object_key(workload)] = workload
    plain = objects.job(
        "plain", namespace="legacy", uid="u-4", labels={"federator.io/burst": "allow"}
    )
    del plain["metadata"]["labels"][label]  # a plain suspended Job: no LocalQueue
    observer.jobs.items[object_key(plain)] = plain
    target = local_queue("team-c", "q", "research")
    observer.local_queues.items[object_key(target)] = target

    view = await observer.snapshot(objects.T0_S + 60)
    decision_policy = policy.to_decision_policy(config)
    values = {
        job.name: decision_policy.value_of_time_usd_per_hour(
            gpus=1, queue=job.spec.queue, priority=0, per_gpu_usd=job.spec.value_usd_per_gpu_hour
        )
        for job in view.jobs
    }
    assert values == {"own": 10.0, "same-name": 2.0, "via-cq": 30.0, "plain": 20.0}
