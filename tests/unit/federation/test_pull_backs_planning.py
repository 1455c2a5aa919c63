"""Pure planning of the pull-back: which placed jobs whose copy has not started come home.

`planning.pull_backs` is the selection the loop's `_pull_back` made inline (the loop still
carries each one out); these cases pin its rules without a cluster."""

from __future__ import annotations

from dataclasses import replace

from federator.core.decisions import Decision, DecisionKind
from federator.core.models import OnPremState, PendingJob, QuotaPool
from federator.federation import planning
from federator.federation.ports import CloudView, CopyState, CopyView, OnPremJob, OnPremView
from federator.federation.records import Phase, PlacementRecord

NOW = 1_000.0


def placed(name: str, gpus: int, placed_at: float, *, queued: bool = True) -> OnPremJob:
    record = PlacementRecord("cloud-a", "spot", 1, Phase.PLACED, placed_at=placed_at, gpus=gpus)
    return OnPremJob(
        key=f"team-a/{name}",
        namespace="team-a",
        name=name,
        uid=f"uid-{name}",
        resource_version="1",
        gpus=gpus,
        record=record,
        spec=PendingJob(key=f"team-a/{name}", gpus=gpus, submitted_at=0.0, runtime_estimate_s=60),
        workload=f"job-{name}" if queued else None,
    )


def copy_of(job: OnPremJob, state: CopyState = CopyState.PENDING) -> CopyView:
    return CopyView("cloud-a", "team-a", f"{job.name}-1", job.uid, 1, "spot", state)


def chosen(
    jobs: list[OnPremJob],
    copies: list[CopyView],
    *,
    free_gpus: int,
    decisions: tuple[Decision, ...] = (),
    after_s: float = 0.0,
) -> list[str]:
    onprem = OnPremView(up=True, synced=True, state=OnPremState(64, free_gpus), jobs=tuple(jobs))
    clouds = {"cloud-a": CloudView("cloud-a", up=True, synced=True, copies=tuple(copies))}
    picked = planning.pull_backs(
        onprem, clouds, decisions, starting_within_s=10.0, after_s=after_s, now=NOW
    )
    return [job.name for job, _ in picked]


def test_the_oldest_placements_come_back_first_while_on_prem_has_room() -> None:
    jobs = [placed("young", 4, 300.0), placed("old", 8, 200.0), placed("older", 4, 100.0)]
    assert chosen(jobs, [copy_of(j) for j in jobs], free_gpus=8) == ["older", "young"]


def test_a_started_copy_a_plain_job_and_a_young_copy_stay() -> None:
    running, plain = placed("running", 4, 0.0), placed("plain", 4, 0.0, queued=False)
    young = placed("young", 4, NOW - 5.0)
    copies = [copy_of(running, CopyState.RUNNING), copy_of(plain), copy_of(young)]
    assert chosen([running, plain, young], copies, free_gpus=64, after_s=60.0) == []


def test_room_kept_for_jobs_the_round_starts_on_prem_now_is_not_offered() -> None:
    job, staying = placed("train", 8, 0.0), replace(placed("local", 8, 0.0), record=None)
    stays = Decision("team-a/local", DecisionKind.STAY, None, None, 0.0, 5.0, 65.0, {}, "stay")
    later = stays._replace(expected_wait_s=600.0)
    assert chosen([job, staying], [copy_of(job)], free_gpus=8, decisions=(stays,)) == []
    assert chosen([job, staying], [copy_of(job)], free_gpus=8, decisions=(later,)) == ["train"]


def test_a_job_comes_back_only_when_its_own_quota_pool_has_room() -> None:
    """Team A's ClusterQueue is full, team B's has 8 free: B's placed job comes back, A's stays
    in the cloud (pooled, the 8 free GPUs went to the older, A's)."""
    a_job = placed("a", 8, 100.0)
    a_job = replace(a_job, spec=replace(a_job.spec, quota_pool="clusterqueue/a"))
    b_job = placed("b", 8, 200.0)
    b_job = replace(b_job, spec=replace(b_job.spec, quota_pool="clusterqueue/b"))
    pools = (QuotaPool("clusterqueue/a", 32, 0), QuotaPool("clusterqueue/b", 32, 8))
    state = OnPremState(64, 8, quota_pools=pools)
    onprem = OnPremView(up=True, synced=True, state=state, jobs=(a_job, b_job))
    clouds = {
        "cloud-a": CloudView(
            "cloud-a", up=True, synced=True, copies=(copy_of(a_job), copy_of(b_job))
        )
    }
    picked = planning.pull_backs(onprem, clouds, (), starting_within_s=10.0, after_s=0.0, now=NOW)
    assert [job.name for job, _ in picked] == ["b"]
    one_pool = replace(onprem, state=OnPremState(64, 8))
    picked = planning.pull_backs(one_pool, clouds, (), starting_within_s=10.0, after_s=0.0, now=NOW)
    assert [job.name for job, _ in picked] == ["a"]
