"""The loop carries out `burst.replacement.start_timeout` like a preemption's re-placement, but
counts no preemption: a copy whose pods never start is deleted, its pool avoided, the job
placed again (or, out of re-placements, sent home).

Before, a copy whose capacity never came (spot capacity unavailable, a pool that cannot
scale, a taint) stayed Pending for ever; only pull-back or a person moved the job."""

from __future__ import annotations

from collections.abc import Sequence

import structlog.testing

from federator import metrics
from federator.core.models import DatasetNeed, Offer
from federator.core.policy import DecisionPolicy
from federator.errors import ClusterUnavailable
from federator.federation import Federation, FederationSettings
from federator.federation.ports import CopyState, OnPremJob
from federator.federation.records import Phase
from tests.unit.kube.fakes import FakeCloud, FakeJob, FakeOnPrem
from tests.unit.kube.test_federation_loop import Offers, Scripted, offer
from tests.unit.kube.test_federation_review import Replicas, WithDatasets

TIMEOUT_S = 300.0
OFFERS = [offer("cloud-a", "spot", 1.0), offer("cloud-a", "ondemand", 3.0)]


def two_pools() -> FakeCloud:
    return FakeCloud("cloud-a", pools={"spot": 32, "ondemand": 32})


def federation(
    onprem: FakeOnPrem,
    cloud: FakeCloud,
    *,
    offers: Sequence[Offer] = OFFERS,
    replicas: Replicas | None = None,
    **kw: object,
) -> Federation:
    settings = FederationSettings(
        interval_s=10,
        replace_backoff_s=5,
        gc_grace_s=0,
        **{"start_timeout_s": TIMEOUT_S, **kw},  # type: ignore[arg-type]
    )
    return Federation(
        onprem=onprem,
        clouds={cloud.name: cloud},
        policy=DecisionPolicy(),
        offers=Offers(offers),
        settings=settings,
        data=replicas,
        sizes=replicas,
        decide=Scripted(),
    )


def preemptions_counted() -> float:
    return (
        metrics.REGISTRY.get_sample_value("federator_preemptions_total", {"cluster": "cloud-a"})
        or 0.0
    )


async def test_a_copy_pending_past_the_timeout_is_re_placed_on_another_pool() -> None:
    onprem, cloud = FakeOnPrem(), two_pools()
    job = onprem.add("j1", 8)
    fed = federation(onprem, cloud)
    counted = preemptions_counted()
    await fed.run_once(100.0)
    assert job.record is not None
    assert job.record.placement == "cloud-a/spot"
    (first,) = cloud.copies
    with structlog.testing.capture_logs() as logged:
        report = await fed.run_once(100.0 + TIMEOUT_S)
    assert job.record.phase is Phase.REQUEUED, "the record first, as for a preemption"
    assert job.record.stale == (f"cloud-a/{first}",)
    assert cloud.deleted == [first]
    assert cloud.copies == {}
    assert job.remote_state == "NotStarted"
    assert ("team-a/j1", "CloudStartTimeout") in onprem.events
    assert "requeue team-a/j1: CloudStartTimeout on cloud-a/spot" in report.actions
    (line,) = [entry for entry in logged if entry["event"] == "job_requeued"]
    assert line["why"] == "CloudStartTimeout"
    assert line["reason"] == "no pod of the copy started within 5m on cloud-a/spot"
    assert fed.blocked_until[("cloud-a", "spot")] == 100.0 + TIMEOUT_S + 1800.0
    # Capacity that never came is no preemption: the pool's rate learns nothing from it.
    assert job.record.preemptions == 0
    assert fed.preemptions == {}
    assert preemptions_counted() == counted
    await fed.run_once(100.0 + TIMEOUT_S + 10)  # past the 5 s backoff
    assert job.record.phase is Phase.PLACED
    assert (job.record.pool, job.record.attempt) == ("ondemand", 2), "the slow pool is blocked"
    assert job.record.history == ("cloud-a/spot",)
    assert len(cloud.copies) == 1


async def test_the_event_says_why_and_that_the_job_is_re_placed() -> None:
    onprem, cloud = Telling(), two_pools()
    onprem.add("j1", 8)
    fed = federation(onprem, cloud)
    await fed.run_once(100.0)
    await fed.run_once(100.0 + TIMEOUT_S)
    assert onprem.told[1:] == [
        (
            "CloudStartTimeout",
            "no pod of the copy started within 5m on cloud-a/spot; re-placing",
            True,
        )
    ]


class StartsAsItIsDeleted(FakeCloud):
    """The copy's pods start just as the timeout fires, and the delete does not get through."""

    async def delete_copy(self, namespace: str, name: str) -> None:
        copy = self.copies[f"{namespace}/{name}"]
        if copy.state is CopyState.PENDING:
            copy.state = CopyState.RUNNING
            raise ClusterUnavailable(self.name, "connection reset")
        await super().delete_copy(namespace, name)


async def test_a_copy_that_starts_as_the_timeout_fires_is_collected_as_stale() -> None:
    onprem = FakeOnPrem()
    cloud = StartsAsItIsDeleted("cloud-a", pools={"spot": 32, "ondemand": 32})
    job = onprem.add("j1", 8)
    fed = federation(onprem, cloud)
    await fed.run_once(100.0)
    (first,) = cloud.copies
    report = await fed.run_once(100.0 + TIMEOUT_S)
    assert job.record is not None
    assert job.record.phase is Phase.REQUEUED, "the record went first"
    assert any("connection reset" in failure for failure in report.failures)
    assert cloud.deleted == [first], "the started copy is stale: GC deleted it"
    assert f"gc cloud-a/{first}: stale: the job is being re-placed" in report.actions
    await fed.run_once(100.0 + TIMEOUT_S + 10)
    assert (job.record.phase, job.record.pool, job.record.attempt) == (Phase.PLACED, "ondemand", 2)
    assert job.terminal is None


async def test_a_copy_pending_under_the_timeout_is_left_until_it_is_reached() -> None:
    onprem, cloud = FakeOnPrem(), two_pools()
    job = onprem.add("j1", 8)
    fed = federation(onprem, cloud)
    await fed.run_once(100.0)
    for at in (110.0, 100.0 + TIMEOUT_S / 2, 100.0 + TIMEOUT_S - 1):
        await fed.run_once(at)
        assert job.record is not None
        assert (job.record.phase, job.record.attempt) == (Phase.PLACED, 1), at
        assert job.remote_state == "Pending"
        assert cloud.deleted == []
        assert fed.blocked_until == {}
    await fed.run_once(100.0 + TIMEOUT_S)
    assert job.record.phase is Phase.REQUEUED


async def test_a_copy_that_started_is_never_timed_out() -> None:
    onprem, cloud = FakeOnPrem(), two_pools()
    job = onprem.add("j1", 8)
    fed = federation(onprem, cloud)
    await fed.run_once(100.0)
    cloud.set_state(job.uid, CopyState.RUNNING)
    await fed.run_once(100.0 + 10 * TIMEOUT_S)
    assert job.record is not None
    assert (job.record.phase, job.record.attempt) == (Phase.PLACED, 1)
    assert cloud.deleted == []


async def test_a_copy_waiting_for_its_data_is_never_timed_out_and_counts_from_its_resume() -> None:
    onprem = WithDatasets({"j1": (DatasetNeed("imagenet", 0),)})
    cloud, replicas = two_pools(), Replicas()
    job = onprem.add("j1", 8)
    fed = federation(onprem, cloud, replicas=replicas)
    await fed.run_once(100.0)
    (copy,) = cloud.copies.values()
    assert copy.state is CopyState.SUSPENDED, "placed, waiting for its data"
    await fed.run_once(100.0 + 10 * TIMEOUT_S)
    assert job.record is not None
    assert (job.record.phase, job.record.attempt) == (Phase.PLACED, 1)
    assert cloud.deleted == []
    replicas.complete.add(("imagenet", "cloud-a"))
    resumed_at = 200.0 + 10 * TIMEOUT_S
    await fed.run_once(resumed_at)
    assert copy.state is CopyState.PENDING, "resumed"
    await fed.run_once(resumed_at + TIMEOUT_S - 1)
    assert (job.record.phase, job.record.attempt) == (Phase.PLACED, 1), "timed from its resume"
    await fed.run_once(resumed_at + TIMEOUT_S)
    assert job.record.phase is Phase.REQUEUED
    assert ("team-a/j1", "CloudStartTimeout") in onprem.events


async def test_a_null_start_timeout_never_fires() -> None:
    onprem, cloud = FakeOnPrem(), two_pools()
    job = onprem.add("j1", 8)
    fed = federation(onprem, cloud, start_timeout_s=None)
    await fed.run_once(100.0)
    await fed.run_once(100.0 + 1000 * TIMEOUT_S)
    assert job.record is not None
    assert (job.record.phase, job.record.attempt) == (Phase.PLACED, 1)
    assert cloud.deleted == []
    assert "CloudStartTimeout" not in {reason for _, reason in onprem.events}


async def test_out_of_re_placements_the_job_goes_back_on_prem_for_good() -> None:
    onprem, cloud = FakeOnPrem(), two_pools()
    job = onprem.add("j1", 8)
    fed = federation(
        onprem, cloud, offers=[offer("cloud-a")], max_replacements=1, block_pool_for_s=0
    )
    await never_starting(fed, job, times=2)
    assert job.record is None, "record dropped"
    assert job.active_workload, "released to Kueue"
    assert cloud.copies == {}
    assert ("team-a/j1", "ReturnedOnPrem") in onprem.events
    assert job.returned == "too many re-placements"


async def never_starting(fed: Federation, job: FakeJob, *, times: int) -> None:
    """Place the job `times` times, each copy timed out, then run the pass that finds it out of
    re-placements."""
    now = 100.0
    for _ in range(times):
        await fed.run_once(now)
        assert job.record is not None
        assert job.record.phase is Phase.PLACED
        await fed.run_once(now + TIMEOUT_S)
        assert job.record.phase is Phase.REQUEUED
        now += TIMEOUT_S + 100
    await fed.run_once(now)


class Telling(FakeOnPrem):
    """The on-prem fake with every Event's reason, message and type kept."""

    def __init__(self) -> None:
        super().__init__()
        self.told: list[tuple[str, str, bool]] = []

    async def event(self, job: OnPremJob, *, reason: str, message: str, warning: bool) -> None:
        await super().event(job, reason=reason, message=message, warning=warning)
        self.told.append((reason, message, warning))
