"""On-prem quota pools: each job waits for its own pool's quota, not the whole cluster's.

Two teams with a ClusterQueue each (no cohort): team A's queue is full for six hours, team B's
is idle. Kueue admits A's jobs only on A's quota, so an A job waits six hours whatever B has
free; pooled into one cluster-wide figure, it looked as if it "starts on-prem now" and was never
considered for the cloud.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace

from federator.core.models import OnPremState, PendingJob, QuotaPool, RunningJob, Spend
from federator.core.onprem import OnPremReplay, PooledReplay, admission_order, replay_from_now
from federator.core.placements import DecisionKind, decide
from tests.unit.core.test_placements import HOUR, NOW, ON_DEMAND, POLICY, SPOT, job, kinds, run

# 16 GPUs of team A, all taken for six hours; 16 GPUs of team B, all free.
TWO_TEAMS = OnPremState(
    total_gpus=32,
    free_gpus=16,
    running=(RunningJob("a/old", 16, 6 * HOUR, quota_pool="cq-a"),),
    quota_pools=(QuotaPool("cq-a", 16, 0), QuotaPool("cq-b", 16, 16)),
)


def starts(jobs: list[PendingJob], onprem: OnPremState) -> dict[str, float]:
    """Each job's replayed wait from NOW, every job staying."""
    replay = replay_from_now(admission_order(jobs, onprem), onprem, now=NOW, backfill=True)
    seen = {}
    for _, pending, start in replay.starts():
        seen[pending.key] = start - NOW
        replay.stays(pending, start)
    return seen


def test_a_job_waits_for_its_own_pools_quota_not_another_teams_idle_one() -> None:
    jobs = [job("a/train", gpus=8, quota_pool="cq-a"), job("b/train", gpus=8, quota_pool="cq-b")]
    assert starts(jobs, TWO_TEAMS) == {"b/train": 0.0, "a/train": 6 * HOUR}
    # The same cluster as one pool: both would start now.
    assert starts(jobs, replace(TWO_TEAMS, quota_pools=())) == {"a/train": 0.0, "b/train": 0.0}


def test_the_full_teams_job_bursts_while_the_idle_teams_job_starts_on_prem() -> None:
    jobs = [job("a/train", quota_pool="cq-a"), job("b/train", quota_pool="cq-b")]
    got = run(jobs, onprem=TWO_TEAMS).by_key()
    assert (got["a/train"].kind, got["a/train"].pool_name) == (
        DecisionKind.BURST,
        "cloud-a/a100-spot",
    )
    assert got["a/train"].expected_cost_usd > 0
    assert "6h00m expected on-prem wait" in got["a/train"].reason
    assert (got["b/train"].kind, got["b/train"].reason) == (
        DecisionKind.STAY,
        "starts on-prem now",
    )


def test_a_pool_gets_back_only_its_own_running_jobs_gpus() -> None:
    """B's running job ends in one hour; A's in six: an A job waits six hours."""
    onprem = replace(
        TWO_TEAMS,
        free_gpus=0,
        running=(*TWO_TEAMS.running, RunningJob("b/old", 16, HOUR, quota_pool="cq-b")),
        quota_pools=(QuotaPool("cq-a", 16, 0), QuotaPool("cq-b", 16, 0)),
    )
    jobs = [job("a/x", gpus=4, quota_pool="cq-a"), job("b/x", gpus=4, quota_pool="cq-b")]
    assert starts(jobs, onprem) == {"b/x": HOUR, "a/x": 6 * HOUR}


def test_jobs_of_no_known_pool_see_the_whole_cluster() -> None:
    """A plain Job outside Kueue, or a queue whose ClusterQueue is not seen: pooled, as before."""
    jobs = [job("plain/x", gpus=8), job("lost/x", gpus=8, quota_pool="cq-gone")]
    assert starts(jobs, TWO_TEAMS) == {"plain/x": 0.0, "lost/x": 0.0}


def test_bursts_from_different_pools_share_one_ledger() -> None:
    """The cloud has room for one 8-GPU job on spot: the job decided first takes it, the other
    goes to on-demand, whichever pool each waits in (A's job starts first: admission order)."""
    onprem = replace(TWO_TEAMS, quota_pools=(QuotaPool("cq-a", 16, 0), QuotaPool("cq-b", 16, 0)))
    onprem = replace(
        onprem, free_gpus=0, running=(*onprem.running, RunningJob("b/old", 16, 6 * HOUR, "cq-b"))
    )
    jobs = [
        job("a/train", quota_pool="cq-a"),
        job("b/train", quota_pool="cq-b", submitted_at=1.0),
    ]
    got = kinds(run(jobs, onprem=onprem, offers=(replace(SPOT, free_gpus=8), ON_DEMAND)))
    assert got == [
        ("a/train", "burst", "cloud-a/a100-spot"),
        ("b/train", "burst", "cloud-a/a100-ondemand"),
    ]


def test_the_round_decides_in_start_order_across_pools() -> None:
    """Merged starts come earliest first, ties in admission order, as one pool's do."""
    onprem = replace(
        TWO_TEAMS,
        free_gpus=0,
        running=(
            RunningJob("a/old", 16, 3 * HOUR, quota_pool="cq-a"),
            RunningJob("b/old", 16, HOUR, quota_pool="cq-b"),
        ),
        quota_pools=(QuotaPool("cq-a", 16, 0), QuotaPool("cq-b", 16, 0)),
    )
    jobs = [
        job("a/1", gpus=16, hours=1.0, quota_pool="cq-a"),
        job("a/2", gpus=16, hours=1.0, quota_pool="cq-a", submitted_at=1.0),
        job("b/1", gpus=16, hours=5.0, quota_pool="cq-b", submitted_at=2.0),
    ]
    replay = PooledReplay(admission_order(jobs, onprem), onprem, now=NOW, backfill=True)
    order = []
    for _, pending, start in replay.starts():
        order.append((pending.key, (start - NOW) / HOUR))
        replay.stays(pending, start)
    assert order == [("b/1", 1.0), ("a/1", 3.0), ("a/2", 4.0)]


def test_one_pool_decides_exactly_as_no_pools() -> None:
    """A cluster with a single ClusterQueue is one pool: the same round to the last figure."""
    rng = random.Random(7)
    for _ in range(40):
        running = tuple(
            RunningJob(f"r{i}", rng.choice([1, 4, 8]), rng.uniform(0, 8 * HOUR), quota_pool="cq")
            for i in range(rng.randint(0, 6))
        )
        onprem = OnPremState(total_gpus=48, free_gpus=rng.randint(0, 16), running=running)
        jobs = [
            job(f"ns/j{i}", gpus=rng.choice([1, 2, 4, 8, 16]), hours=rng.uniform(0.1, 10))
            for i in range(rng.randint(1, 30))
        ]
        pooled = replace(onprem, quota_pools=(QuotaPool("cq", 48, onprem.free_gpus),))
        plain = decide(jobs, onprem, (SPOT, ON_DEMAND), Spend(), POLICY, NOW)
        same = decide(jobs, pooled, (SPOT, ON_DEMAND), Spend(), POLICY, NOW)
        assert [tuple(d) for d in same.decisions] == [tuple(d) for d in plain.decisions]
        assert isinstance(replay_from_now(jobs, pooled, now=NOW, backfill=True), OnPremReplay)


def test_a_job_too_big_for_its_pool_never_starts_there() -> None:
    jobs = [job("a/huge", gpus=24, quota_pool="cq-a")]
    assert starts(jobs, TWO_TEAMS) == {"a/huge": math.inf}
