"""The node-by-node replay: a gang waits for room on nodes, not for GPUs anywhere."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from federator.core.models import OnPremState, PendingJob, QuotaPool, RunningJob
from federator.core.node_replay import NodeFreeGpus, NodeReplay, knows_every_node
from federator.core.onprem import OnPremReplay, PooledReplay, admission_order, replay_from_now

NOW = 100.0


def job(key: str, gpus: int, runtime: float, submitted: float = 0.0) -> PendingJob:
    return PendingJob(key=key, gpus=gpus, submitted_at=submitted, runtime_estimate_s=runtime)


def running(key: str, remaining: float, *nodes: tuple[int, int]) -> RunningJob:
    return RunningJob(key, sum(gpus for _, gpus in nodes), remaining, nodes=nodes)


def cluster(free: tuple[int, ...], *jobs: RunningJob) -> OnPremState:
    return OnPremState(
        total_gpus=8 * len(free),
        free_gpus=sum(free),
        running=jobs,
        node_free_gpus=free,
        gpus_per_node=8,
    )


def starts(
    jobs: list[PendingJob],
    onprem: OnPremState,
    *,
    backfill: bool = True,
    leaving: frozenset[str] = frozenset(),
) -> dict[str, float]:
    """Seconds from now to each job's start, in the order the replay yields them."""
    replay = replay_from_now(admission_order(jobs, onprem), onprem, now=NOW, backfill=backfill)
    seen: dict[str, float] = {}
    for _, pending, start in replay.starts():
        seen[pending.key] = start - NOW
        if pending.key not in leaving:
            replay.stays(pending, start)
    return seen


# Two full 8-GPU nodes, each running two 4-GPU jobs that end at different times: 16 GPUs come
# back in all by t=200, but node 0 is empty only at 1,000 and node 1 at 2,000.
HALF_AND_HALF = cluster(
    (0, 0),
    running("a", 10, (0, 4)),
    running("b", 1000, (0, 4)),
    running("c", 200, (1, 4)),
    running("d", 2000, (1, 4)),
)


def test_a_gang_waits_for_a_node_to_drain_where_the_pooled_replay_sees_gpus_anywhere() -> None:
    jobs = [job("gang", 8, 50)]
    assert starts(jobs, HALF_AND_HALF) == {"gang": 1000.0}
    pooled = replace(
        HALF_AND_HALF, running=tuple(replace(r, nodes=()) for r in HALF_AND_HALF.running)
    )
    assert starts(jobs, pooled) == {"gang": 200.0}, "pooled: 4 + 4 GPUs free on two nodes"


def test_a_job_that_stays_holds_its_node_and_gives_it_back_there() -> None:
    # small starts at 10 on node 0 (the only one with room) and runs to 1,510: node 0 then
    # drains at 1,510, not at 1,000 when b ends, and still before node 1 (2,000).
    jobs = [job("small", 2, 1500), job("gang", 8, 50, submitted=1.0)]
    assert starts(jobs, HALF_AND_HALF) == {"small": 10.0, "gang": 1510.0}
    assert starts(jobs, HALF_AND_HALF, leaving=frozenset({"small"})) == {
        "small": 10.0,
        "gang": 1000.0,
    }, "a job that leaves takes no room"


def test_best_fit_keeps_an_empty_node_for_the_gang_behind() -> None:
    for free in [(8, 4), (4, 8)]:
        busy = next(node for node, gpus in enumerate(free) if gpus == 4)
        onprem = cluster(free, running("r", 600, (busy, 4)))
        jobs = [job("small", 4, 500), job("gang", 8, 50, submitted=1.0)]
        assert starts(jobs, onprem) == {"small": 0.0, "gang": 0.0}, free


def test_a_gang_bigger_than_a_node_needs_that_many_empty_nodes() -> None:
    onprem = cluster((8, 4, 4), running("x", 300, (1, 4)), running("y", 900, (2, 4)))
    jobs = [job("sixteen", 16, 50), job("twelve", 12, 50, submitted=1.0)]
    # twelve (one full node + 4 GPUs on another) fits now, on node 0 and node 1, and ends at
    # 50. sixteen needs two empty nodes: node 0 again at 50, node 1 only when x ends (300).
    assert starts(jobs, onprem) == {"twelve": 0.0, "sixteen": 300.0}
    pooled = replace(onprem, running=tuple(replace(r, nodes=()) for r in onprem.running))
    assert starts(jobs, pooled) == {"twelve": 0.0, "sixteen": 50.0}, "16 GPUs free at 50"


def test_strict_fifo_lets_nothing_pass_a_head_that_does_not_fit() -> None:
    jobs = [job("gang", 8, 50), job("small", 1, 50, submitted=1.0)]
    assert starts(jobs, HALF_AND_HALF, backfill=False) == {"gang": 1000.0, "small": 1000.0}
    assert starts(jobs, HALF_AND_HALF) == {"small": 10.0, "gang": 1000.0}


def test_jobs_that_can_never_fit_never_start_and_come_last() -> None:
    onprem = cluster((8, 0), running("r", 100, (1, 8)))
    too_big = job("too-big", 24, 50)
    big_pod = replace(job("big-pod", 16, 50, submitted=1.0), gpus_per_pod=16)
    fits = job("fits", 8, 50, submitted=2.0)
    seen = starts([too_big, big_pod, fits], onprem)
    assert seen == {"fits": 0.0, "too-big": math.inf, "big-pod": math.inf}
    assert list(seen) == ["fits", "too-big", "big-pod"]


def test_a_release_to_a_node_that_is_gone_frees_nothing() -> None:
    onprem = cluster((0,), running("r", 100, (0, 4), (5, 4)))
    assert starts([job("gang", 8, 50)], onprem) == {"gang": math.inf}


def test_the_replay_follows_nodes_only_when_every_running_job_says_where_it_runs() -> None:
    assert knows_every_node(HALF_AND_HALF)
    assert isinstance(replay_from_now([], HALF_AND_HALF, now=NOW, backfill=True), NodeReplay)
    one_unknown = replace(
        HALF_AND_HALF, running=(*HALF_AND_HALF.running, RunningJob("elsewhere", 2, 50.0))
    )
    assert not knows_every_node(one_unknown)
    assert isinstance(replay_from_now([], one_unknown, now=NOW, backfill=True), OnPremReplay)
    no_nodes = replace(HALF_AND_HALF, node_free_gpus=())
    assert not knows_every_node(no_nodes)
    one_pool = replace(HALF_AND_HALF, quota_pools=(QuotaPool("team", 16, 0),))
    assert not knows_every_node(one_pool), "a quota pool bounds admission, not the nodes"
    pools = replace(HALF_AND_HALF, quota_pools=(QuotaPool("a", 8, 0), QuotaPool("b", 8, 0)))
    assert isinstance(replay_from_now([], pools, now=NOW, backfill=True), PooledReplay)


def test_nodes_of_another_size_give_their_gpus_back_in_full() -> None:
    # Two 16-GPU nodes, each full with one job: 16 GPUs come back to node 0 at 100.
    onprem = replace(
        cluster((0, 0), running("x", 100, (0, 16)), running("y", 1000, (1, 16))),
        total_gpus=32,
        gpus_per_node=16,
    )
    assert starts([job("sixteen", 16, 50)], onprem) == {"sixteen": 100.0}
    # On 4-GPU nodes a 6-GPU job is one full node and 2 GPUs on another.
    small = replace(cluster((4, 2), running("z", 300, (1, 2))), total_gpus=8, gpus_per_node=4)
    assert starts([job("six", 6, 50)], small) == {"six": 0.0}


def test_a_stay_answers_the_start_just_yielded() -> None:
    onprem = cluster((8, 8))
    replay = replay_from_now([job("a", 4, 50), job("b", 4, 50)], onprem, now=NOW, backfill=True)
    steps = replay.starts()
    next(steps)
    with pytest.raises(ValueError, match="just yielded"):
        replay.stays(job("b", 4, 50), NOW)


def test_a_job_without_gpus_starts_at_once_in_either_replay() -> None:
    # Pooled: the running job's nodes are unknown (the node size once divided by zero here).
    for holder in [RunningJob("r", 8, 100.0), running("r", 100, (0, 8))]:
        onprem = cluster((0,), holder)
        assert starts([job("cpu-only", 0, 50)], onprem) == {"cpu-only": 0.0}, holder


@given(
    st.lists(st.integers(0, 8), min_size=1, max_size=6),
    st.lists(st.lists(st.integers(1, 8), min_size=1, max_size=3), max_size=30),
)
def test_node_bookkeeping_matches_a_plain_list(free: list[int], requests: list[list[int]]) -> None:
    """Takes and give-backs keep each node within [0, 8], and the fit test agrees with taking."""
    nodes = NodeFreeGpus(free, 8)
    plain = list(free)
    held: list[tuple[tuple[int, int], ...]] = []
    for pods in requests:
        pods = sorted(pods, reverse=True)
        if nodes.fits(pods):
            placement = nodes.take(pods)
            assert sorted(gpus for _, gpus in placement) == sorted(pods)
            for node, gpus in placement:
                plain[node] -= gpus
            held.append(placement)
        elif held:
            placement = held.pop(0)
            nodes.give_back(placement)
            for node, gpus in placement:
                plain[node] += gpus
        assert nodes.free == plain
        assert all(0 <= gpus <= 8 for gpus in plain)
        assert nodes.most == max(plain)
