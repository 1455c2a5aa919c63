"""The federation loop where a review of the cost model and of the daemon found it wrong: a held
job whose data nobody copied, the hourly budget, the preemption rate's weight, a dataset's
size before it was listed, the write fence in the middle of a pass, and a follower counting
spend. Each test failed before its fix."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from federator import metrics
from federator.core.decisions import Decision, DecisionKind, Round
from federator.core.models import (
    CapacityType,
    DatasetNeed,
    Offer,
    OnPremState,
    PendingJob,
    Spend,
)
from federator.core.policy import Budgets, DecisionPolicy, Strategy
from federator.core.preemption import PreemptionObservation, PreemptionPrior, estimate_rate
from federator.federation import Federation, FederationSettings
from federator.federation.ports import CopyRequest, CopyState, DataReadiness, OnPremJob, OnPremView
from federator.federation.records import Phase
from federator.leadership import Fence
from tests.unit.kube.fakes import FakeCloud, FakeOnPrem
from tests.unit.kube.test_federation_loop import Offers, Scripted, federation, offer

TB = 10**12


class WithDatasets(FakeOnPrem):
    """The fake on-prem cluster, its jobs reading the datasets named in `reads` (size unknown
    unless given, as a `federator.io/datasets` annotation without sizes)."""

    def __init__(self, reads: dict[str, tuple[DatasetNeed, ...]]) -> None:
        super().__init__()
        self.reads = reads

    async def snapshot(self, now: float) -> OnPremView:
        view = await super().snapshot(now)
        jobs = tuple(
            replace(job, spec=replace(job.spec, datasets=self.reads.get(job.name, ())))
            for job in view.jobs
        )
        return replace(view, jobs=jobs)


class Replicas:
    """The data gate and the sizes port over replicas that complete when a test says so."""

    def __init__(self, *, failing: frozenset[str] = frozenset()) -> None:
        self.asked: list[tuple[str, str]] = []
        self.complete: set[tuple[str, str]] = set()
        self.failing = failing
        self.problems: dict[tuple[str, str], str] = {}  # the replica's last try failed: why

    async def ensure_replicated(self, dataset: str, cluster: str) -> DataReadiness:
        self.asked.append((dataset, cluster))
        if dataset in self.failing:
            raise RuntimeError(f"store of {dataset} down")
        replica = (dataset, cluster)
        return DataReadiness(replica in self.complete, self.problems.get(replica, ""))

    async def outputs_synced(self, job_key: str, cluster: str) -> bool:
        return True

    def bytes_remaining(self, dataset: str, cluster: str) -> int | None:
        return 0 if (dataset, cluster) in self.complete else 2 * TB


class HoldUntilReplicated:
    """The cost model's choice for a job whose data is worth copying first: hold for the
    cheapest pool until every dataset is replicated there, then burst."""

    def __init__(self, *, revisit: bool = True) -> None:
        self.revisit = revisit  # False: a hold at a budget (no copy to wait for)

    def __call__(
        self,
        jobs: Sequence[PendingJob],
        onprem: OnPremState,
        offers: Sequence[Offer],
        spend: Spend,
        policy: DecisionPolicy,
        now: float,
    ) -> Round:
        best = min(offers, key=lambda o: o.price_per_gpu_hour_usd)
        decisions = []
        for job in jobs:
            there = all(d.name in best.replicated_datasets for d in job.datasets)
            kind = DecisionKind.BURST if there else DecisionKind.HOLD
            revisit = now + 3600.0 if kind is DecisionKind.HOLD and self.revisit else None
            decisions.append(
                Decision(
                    job.key, kind, best.cluster, best.pool, 50.0, 3600, 7200, {}, "copy first"
                )._replace(revisit_at=revisit, gpus=job.gpus)
            )
        return Round(tuple(decisions), now=now)


def held_federation(
    onprem: FakeOnPrem, cloud: FakeCloud, replicas: Replicas, decide: HoldUntilReplicated
) -> Federation:
    return Federation(
        onprem=onprem,
        clouds={cloud.name: cloud},
        policy=DecisionPolicy(),
        offers=Offers([offer(cloud.name)]),
        settings=FederationSettings(interval_s=10, gc_grace_s=0),
        data=replicas,
        sizes=replicas,
        decide=decide,
    )


async def test_a_job_held_for_its_data_starts_the_copy_and_bursts_once_it_is_there() -> None:
    onprem = WithDatasets({"j1": (DatasetNeed("imagenet", 0),)})
    cloud, replicas = FakeCloud("cloud-a"), Replicas()
    onprem.add("j1", 8)
    fed = held_federation(onprem, cloud, replicas, HoldUntilReplicated())
    report = await fed.run_once(100.0)
    assert [d.kind for d in report.decisions] == [DecisionKind.HOLD]
    assert replicas.asked == [("imagenet", "cloud-a")]
    assert not cloud.copies, "held, not placed"
    replicas.complete.add(("imagenet", "cloud-a"))
    await fed.run_once(110.0)
    assert len(cloud.copies) == 1
    assert onprem.jobs["team-a/j1"].record is not None


async def test_held_jobs_ask_for_each_replica_once_a_pass_and_not_once_it_is_complete() -> None:
    imagenet = (DatasetNeed("imagenet", 0),)
    onprem = WithDatasets({"j1": imagenet, "j2": imagenet})
    cloud, replicas = FakeCloud("cloud-a"), Replicas()
    onprem.add("j1", 8)
    onprem.add("j2", 8)
    fed = held_federation(onprem, cloud, replicas, HoldUntilReplicated())
    await fed.run_once(100.0)
    assert replicas.asked == [("imagenet", "cloud-a")], "two held jobs, one replica asked"
    replicas.complete.add(("imagenet", "cloud-a"))
    before = len(replicas.asked)
    await fed.run_once(110.0)  # both burst: only placing asks, once per job
    assert len(replicas.asked) - before == 2


async def test_a_failing_replica_is_only_its_own_jobs_failure() -> None:
    onprem = WithDatasets({"j1": (DatasetNeed("broken", 0),), "j2": (DatasetNeed("imagenet", 0),)})
    cloud, replicas = FakeCloud("cloud-a"), Replicas(failing=frozenset({"broken"}))
    onprem.add("j1", 8)
    onprem.add("j2", 8)
    fed = held_federation(onprem, cloud, replicas, HoldUntilReplicated())
    report = await fed.run_once(100.0)
    assert ("imagenet", "cloud-a") in replicas.asked
    assert [f.split(":")[0] for f in report.failures] == ["team-a/j1"]


async def test_no_copy_starts_for_a_hold_at_a_budget_nor_on_a_follower() -> None:
    onprem = WithDatasets({"j1": (DatasetNeed("imagenet", 0),)})
    cloud, replicas = FakeCloud("cloud-a"), Replicas()
    onprem.add("j1", 8)
    at_budget = held_federation(onprem, cloud, replicas, HoldUntilReplicated(revisit=False))
    await at_budget.run_once(100.0)
    follower = held_federation(onprem, cloud, replicas, HoldUntilReplicated())
    follower.may_write = lambda: False
    await follower.run_once(100.0)
    assert replicas.asked == []


def on_demand(cluster: str, price: float) -> Offer:
    return Offer(cluster, "od", "A100", CapacityType.ON_DEMAND, price, 256)


async def test_the_hourly_budget_holds_across_passes() -> None:
    # $20/h; a burst of 8 GPUs at $2 burns $16/h: one fits, a second would make $32/h.
    onprem, cloud = FakeOnPrem(), FakeCloud("cloud-a", pools={"od": 256})
    policy = DecisionPolicy(
        strategy=Strategy.ALWAYS,
        budgets=Budgets(max_usd_per_hour=20.0),
        min_pending_before_burst_s=0,
    )
    fed = Federation(
        onprem=onprem,
        clouds={"cloud-a": cloud},
        policy=policy,
        offers=Offers([on_demand("cloud-a", 2.0)]),
        settings=FederationSettings(interval_s=30, gc_grace_s=0),
    )
    for k in range(10):
        onprem.add(f"j{k}", 8)
        await fed.run_once(100.0 + 30.0 * k)
    live = [j.record for j in onprem.jobs.values() if j.record is not None]
    burn = sum(r.price_per_gpu_hour_usd * r.gpus for r in live if r.phase is not Phase.DONE)
    assert len(cloud.copies) == 1
    assert burn <= 20.0


async def test_the_preemption_rate_is_the_posterior_over_stored_and_new_evidence() -> None:
    prior = PreemptionPrior(0.1, 24.0)
    stored = PreemptionObservation(100, 1000.0)  # 100 preemptions in 1,000 job-hours, stored
    built = estimate_rate(prior, (stored,)).rate_per_hour  # what the offers builder gives
    onprem, cloud, decide = FakeOnPrem(), FakeCloud("cloud-a"), Scripted(DecisionKind.STAY)
    onprem.add("j1", 8)
    fed = Federation(
        onprem=onprem,
        clouds={"cloud-a": cloud},
        policy=DecisionPolicy(),
        offers=Offers([replace(offer("cloud-a"), preemption_rate_per_hour=built)]),
        settings=FederationSettings(preemption_prior_strength_h=24.0),
        decide=decide,
        stored_preemption_exposure_h=lambda pool: 1000.0 if pool == ("cloud-a", "spot") else 0,
    )
    fed.preemptions[("cloud-a", "spot")] = 2  # this process: 2 preemptions in 1 running hour
    fed.exposure_h[("cloud-a", "spot")] = 1.0
    await fed.run_once(100.0)
    seen = decide.calls[0][1][0].preemption_rate_per_hour
    exact = estimate_rate(prior, (stored, PreemptionObservation(2, 1.0))).rate_per_hour
    assert abs(seen - exact) < 1e-9, (seen, exact)  # 0.102/h, not 0.273/h


class Recording(Scripted):
    def __init__(self) -> None:
        super().__init__(DecisionKind.STAY)
        self.jobs: list[PendingJob] = []

    def __call__(
        self,
        jobs: Sequence[PendingJob],
        onprem: OnPremState,
        offers: Sequence[Offer],
        spend: Spend,
        policy: DecisionPolicy,
        now: float,
    ) -> Round:
        self.jobs.extend(jobs)
        return super().__call__(jobs, onprem, offers, spend, policy, now)


async def test_a_dataset_not_listed_yet_is_priced_at_its_size_hint() -> None:
    onprem = WithDatasets(
        {"j1": (DatasetNeed("imagenet", 0), DatasetNeed("sized", 5), DatasetNeed("other", 0))}
    )
    onprem.add("j1", 8)
    decide = Recording()
    hints = {"imagenet": 2 * TB}
    fed = Federation(
        onprem=onprem,
        clouds={"cloud-a": FakeCloud("cloud-a")},
        policy=DecisionPolicy(),
        offers=Offers([offer("cloud-a")]),
        settings=FederationSettings(),
        decide=decide,
        size_hint=hints.get,
    )
    await fed.run_once(100.0)
    assert decide.jobs[0].datasets == (
        DatasetNeed("imagenet", 2 * TB),  # no size given: the policy's hint
        DatasetNeed("sized", 5),  # the job's annotation knows better
        DatasetNeed("other", 0),  # no hint either: unknown as before
    )


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_no_write_starts_after_the_fence_closed_mid_pass() -> None:
    clock = Clock(100.0)
    fence = Fence(10.0, clock=clock)
    fence.mark_renewed()  # writes allowed until t=110
    onprem, cloud = FakeOnPrem(), FakeCloud("cloud-a")
    for i in range(3):
        onprem.add(f"j{i}", 8)
    started_closed: list[str] = []
    create, write_record = cloud.create_copy, onprem.write_record

    async def slow_create(request: CopyRequest) -> bool:
        if not fence.allows_writes():
            started_closed.append(f"create {request.source.key}")
        clock.now += 8.0  # each create takes 8 s
        return await create(request)

    async def noted_write(job: OnPremJob, record: object) -> OnPremJob:
        if not fence.allows_writes():
            started_closed.append(f"record {job.key}")
        return await write_record(job, record)  # type: ignore[arg-type]

    cloud.create_copy = slow_create  # type: ignore[method-assign]
    onprem.write_record = noted_write  # type: ignore[method-assign]
    fed = federation(onprem, [cloud], [offer("cloud-a")], Scripted())
    fed.may_write = fence.allows_writes
    report = await fed.run_once(100.0)
    assert started_closed == []
    assert len(cloud.created) == 2, "the second create was in flight when the fence closed"
    assert "fence" in report.skipped


async def test_a_follower_counts_no_cloud_spend_and_counts_from_when_it_leads() -> None:
    onprem, cloud = FakeOnPrem(), FakeCloud("cloud-a")
    job = onprem.add("j1", 8)
    leader = federation(onprem, [cloud], [offer("cloud-a")], Scripted())
    await leader.run_once(100.0)
    cloud.set_state(job.uid, CopyState.RUNNING)
    leads = False
    follower = federation(onprem, [cloud], [offer("cloud-a")], Scripted())
    follower.may_write = lambda: leads
    spend = metrics.CLOUD_SPEND_USD.labels(cluster="cloud-a")
    await follower.run_once(200.0)
    before = spend._value.get()
    await follower.run_once(3800.0)  # an hour of the placed job
    assert spend._value.get() == before
    leads = True
    await follower.run_once(7400.0)  # another hour, now as the leader: that hour only
    assert job.record is not None
    hourly = job.record.price_per_gpu_hour_usd * job.record.gpus
    assert abs(spend._value.get() - before - hourly) < 1e-6
