"""A job placed on a cloud cluster the policy file no longer names is left alone.

Before, a cloud removed from the policy made its placements LOST at once after a restart
("cloud-b unreachable 0s"): the job was placed again elsewhere while its copy kept running
(and billing) on the removed cloud, which federator no longer watched, so it ran twice and the
old copy was never collected. Now the record is kept as it is, the Job is told once (a warning
Event whose text names the two ways out), a log line names the cluster and the job, and
`federator_unmanaged_placements{cluster}` counts such jobs.
"""

from __future__ import annotations

from dataclasses import replace

import structlog.testing

from federator import metrics
from federator.core.models import OnPremState, PendingJob
from federator.core.policy import DecisionPolicy
from federator.federation import Federation, FederationSettings, planning
from federator.federation.ports import CloudView, CopyState, OnPremJob, OnPremView
from federator.federation.records import Phase, PlacementRecord
from tests.unit.federation.test_start_timeout_loop import Telling
from tests.unit.kube.fakes import FakeCloud, FakeOnPrem
from tests.unit.kube.test_federation_loop import Offers, Scripted, offer


def federation(onprem: FakeOnPrem, *clouds: FakeCloud) -> Federation:
    fed = Federation(
        onprem=onprem,
        clouds={c.name: c for c in clouds},
        policy=DecisionPolicy(),
        offers=Offers([offer("cloud-a", price=2.0), offer("cloud-b", price=1.0)]),
        settings=FederationSettings(interval_s=10, replace_backoff_s=5, gc_grace_s=0),
        decide=Scripted(),
    )
    return fed


def unmanaged_gauge(cluster: str) -> float | None:
    return metrics.REGISTRY.get_sample_value("federator_unmanaged_placements", {"cluster": cluster})


async def placed_on_cloud_b() -> tuple[Telling, FakeCloud, FakeCloud]:
    onprem, cloud_a, cloud_b = Telling(), FakeCloud("cloud-a"), FakeCloud("cloud-b")
    onprem.add("j1", 8)
    await federation(onprem, cloud_a, cloud_b).run_once(100.0)  # cloud-b is the cheaper
    job = onprem.jobs["team-a/j1"]
    assert job.record is not None
    assert job.record.placement == "cloud-b/spot"
    cloud_b.set_state("uid-j1", CopyState.RUNNING)
    return onprem, cloud_a, cloud_b


async def test_a_restart_without_the_cluster_neither_re_places_the_job_nor_loses_it() -> None:
    onprem, cloud_a, cloud_b = await placed_on_cloud_b()
    restarted = federation(onprem, cloud_a)  # cloud-b removed from the policy file
    for now in (200.0, 210.0, 400.0, 4000.0):
        report = await restarted.run_once(now)
    job = onprem.jobs["team-a/j1"]
    assert job.record is not None
    assert (job.record.placement, job.record.phase, job.record.attempt) == (
        "cloud-b/spot",
        Phase.PLACED,
        1,
    )
    assert cloud_a.created == [], "no second copy"
    assert len(cloud_b.copies) == 1, "the copy runs on"
    assert cloud_b.deleted == [], "untouched"
    assert not any("requeue" in action for action in report.actions)


async def test_the_job_is_told_once_what_to_do_and_counted() -> None:
    onprem, cloud_a, _ = await placed_on_cloud_b()
    restarted = federation(onprem, cloud_a)
    with structlog.testing.capture_logs() as logged:
        await restarted.run_once(200.0)
        await restarted.run_once(210.0)
    told = [t for t in onprem.told if t[0] == "FederatorClusterNotConfigured"]
    assert told == [("FederatorClusterNotConfigured", planning.unmanaged_reason("cloud-b"), True)]
    message = told[0][1]
    assert "cloud-b" in message
    assert "draining: true" in message
    assert "delete this Job" in message
    (line,) = [e for e in logged if e["event"] == "placement_unmanaged"]
    assert (line["cluster"], line["job"], line["log_level"]) == ("cloud-b", "team-a/j1", "warning")
    assert unmanaged_gauge("cloud-b") == 1.0


async def test_the_count_goes_once_the_job_is_deleted() -> None:
    onprem, cloud_a, _ = await placed_on_cloud_b()
    restarted = federation(onprem, cloud_a)
    await restarted.run_once(200.0)
    del onprem.jobs["team-a/j1"]
    await restarted.run_once(210.0)
    assert unmanaged_gauge("cloud-b") is None


async def test_a_cluster_put_back_draining_finishes_and_collects_the_job() -> None:
    onprem, cloud_a, cloud_b = await placed_on_cloud_b()
    restarted = federation(onprem, cloud_a, cloud_b)
    restarted.settings = FederationSettings(
        interval_s=10, replace_backoff_s=5, gc_grace_s=0, draining_clusters=frozenset({"cloud-b"})
    )
    await restarted.run_once(200.0)
    cloud_b.set_state("uid-j1", CopyState.SUCCEEDED)
    await restarted.run_once(210.0)
    await restarted.run_once(220.0)
    job = onprem.jobs["team-a/j1"]
    assert job.terminal is not None
    assert job.terminal.succeeded
    assert cloud_b.copies == {}, "its copy collected"
    assert len(cloud_b.deleted) == 1
    assert cloud_a.created == []
    assert unmanaged_gauge("cloud-b") is None


def test_planning_says_unmanaged_not_lost_for_a_cluster_not_configured() -> None:
    record = PlacementRecord("cloud-b", "spot", 1, Phase.PLACED, placed_at=0.0, gpus=8)
    job = placed("j1", record)
    onprem = OnPremView(up=True, synced=True, state=OnPremState(16, 0), jobs=(job,))
    clouds = {"cloud-a": CloudView("cloud-a", up=True, synced=True)}
    (step,) = planning.converge(onprem, clouds, planning.Timeouts({}), now=1e6)
    assert step.kind is planning.StepKind.UNMANAGED
    assert step.reason == planning.unmanaged_reason("cloud-b")
    assert planning.unmanaged_placements(onprem, clouds) == [("cloud-b", job)]


def test_a_configured_cluster_down_past_its_timeout_is_still_lost() -> None:
    record = PlacementRecord("cloud-a", "spot", 1, Phase.PLACED, placed_at=0.0, gpus=8)
    onprem = OnPremView(
        up=True, synced=True, state=OnPremState(16, 0), jobs=(placed("j1", record),)
    )
    down = {"cloud-a": CloudView("cloud-a", up=False, synced=True, down_since=100.0)}
    timeouts = planning.Timeouts({}, default_lost_cluster_s=60.0)
    (step,) = planning.converge(onprem, down, timeouts, now=200.0)
    assert (step.kind, step.reason) == (planning.StepKind.LOST, "cloud-a unreachable 100s")
    (step,) = planning.converge(onprem, down, timeouts, now=150.0)
    assert step.kind is planning.StepKind.NOTHING
    assert planning.unmanaged_placements(onprem, down) == []


def placed(name: str, record: PlacementRecord) -> OnPremJob:
    return OnPremJob(
        key=f"team-a/{name}",
        namespace="team-a",
        name=name,
        uid=f"uid-{name}",
        resource_version="1",
        gpus=record.gpus,
        record=record,
        spec=PendingJob(key=f"team-a/{name}", gpus=8, submitted_at=0.0, runtime_estimate_s=60),
        workload=f"job-{name}",
    )


def test_a_job_started_on_prem_by_hand_while_its_cloud_is_removed_keeps_its_record() -> None:
    """Review finding 10: withdrawn, its record went with nothing deleted (the cluster is not
    configured), hiding the copy left running there; now it stays unmanaged and is told so."""
    record = PlacementRecord("cloud-b", "spot", 1, Phase.PLACED, placed_at=0.0, gpus=8)
    job = replace(placed("j1", record), active_pods=1, admitted=True)
    onprem = OnPremView(
        up=True,
        synced=True,
        state=OnPremState(16, 0),
        jobs=(job,),
        source_uids=frozenset({job.uid}),
    )
    cloud_a = CloudView(cluster="cloud-a", up=True, synced=True)
    timeouts = planning.Timeouts(lost_cluster_s={})
    (step,) = planning.converge(onprem, {"cloud-a": cloud_a}, timeouts, now=10.0)
    assert step.kind is planning.StepKind.UNMANAGED
