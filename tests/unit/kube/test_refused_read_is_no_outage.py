"""A cluster that refuses one read federator must make is no outage: its jobs wait.

Refusals (a 403 on one kind the RBAC does not grant) used to mark the cluster down,
and every other Reflector's next watch event marked it up again: it flapped
(`cluster_down`/`cluster_up` every backoff). Kept down instead (baed244), its jobs were taken
as lost after the timeout and run a second time elsewhere while their copies ran on (review of
2026-12-01, finding 2). Now the refused Reflector's cache stops counting as synced: the
cluster's jobs wait, nothing is acted on and nothing is taken as lost, until the read works.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace

import structlog.testing

from federator import errors, metrics
from federator.core.models import OnPremState
from federator.federation import planning
from federator.federation.planning import StepKind
from federator.federation.ports import CloudView, OnPremView
from federator.kube import errors as kube_errors
from federator.kube.clients import Cluster, Health
from federator.kube.watching import JOBS, NODES, Reflector
from tests.unit.federation.test_pull_backs_planning import placed


def refused_gauge(cluster: str) -> float | None:
    return metrics.REGISTRY.get_sample_value("federator_reads_refused", {"cluster": cluster})


def test_a_refusal_names_the_read_and_leaves_the_cluster_up() -> None:
    health = Health("cloud-r1", clock=lambda: 100.0)
    health.mark_ok()
    health.refused(NODES.path, "403 Forbidden: nodes is forbidden")
    assert (health.up, health.down_since) == (True, None)
    assert health.problem == "/api/v1/nodes refused: 403 Forbidden: nodes is forbidden"
    assert refused_gauge("cloud-r1") == 1
    health.refused(JOBS.path, "403 jobs")
    assert refused_gauge("cloud-r1") == 2
    health.accepted(NODES.path)
    health.accepted(JOBS.path)
    assert (health.problem, refused_gauge("cloud-r1")) == ("", 0)


async def test_a_refused_reflector_neither_flaps_nor_downs_the_cluster() -> None:
    cluster = Cluster("cloud-r2", api=None, clock=lambda: 1000.0)  # type: ignore[arg-type]
    cluster.health.mark_ok()
    nodes = Reflector(cluster, NODES, max_backoff_s=0.0)
    nodes.synced = True  # it had listed before RBAC changed

    async def refuse() -> None:
        raise kube_errors.Refused("cloud-r2", 403, "nodes is forbidden")

    nodes.relist = refuse  # type: ignore[method-assign]
    with structlog.testing.capture_logs() as logged:
        task = asyncio.create_task(nodes.run())
        for _ in range(5):
            await asyncio.sleep(0.01)
            cluster.health.mark_ok()  # the Jobs Reflector's watch events meanwhile
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    events = [e["event"] for e in logged if e["event"] in ("cluster_up", "cluster_down")]
    assert events == []
    assert [e["event"] for e in logged].count("reflector_refused") >= 1
    assert (cluster.health.up, cluster.health.down_since) == (True, None)
    assert not nodes.synced, "a refused Reflector's cache no longer follows the cluster"
    assert "nodes is forbidden" in cluster.health.problem


async def test_the_refusal_is_cleared_once_the_read_lists() -> None:
    cluster = Cluster("cloud-r3", api=None, clock=lambda: 1000.0)  # type: ignore[arg-type]
    nodes = Reflector(cluster, NODES, max_backoff_s=0.0)
    answers: list[BaseException | None] = [kube_errors.Refused("cloud-r3", 403, "forbidden"), None]
    listed = asyncio.Event()

    async def relist() -> None:
        answer = answers.pop(0) if answers else None
        if answer is not None:
            raise answer
        listed.set()

    async def never_breaks() -> None:
        await asyncio.Event().wait()

    nodes.relist = relist  # type: ignore[method-assign]
    nodes._watch_until_broken = never_breaks  # type: ignore[method-assign]
    task = asyncio.create_task(nodes.run())
    await asyncio.wait_for(listed.wait(), 5)
    await asyncio.sleep(0)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert cluster.health.refusals == {}
    assert refused_gauge("cloud-r3") == 0


def test_a_cloud_whose_cache_is_refused_keeps_its_jobs_past_the_lost_timeout() -> None:
    """The planning consequence: up but not synced is waiting, never LOST (no second run)."""
    on_a = placed("j1", 1, placed_at=0.0)
    assert on_a.record is not None
    job = replace(on_a, record=replace(on_a.record, cluster="cloud-b"))
    onprem = OnPremView(
        up=True,
        synced=True,
        state=OnPremState(total_gpus=8, free_gpus=0),
        jobs=(job,),
        source_uids=frozenset({job.uid}),
    )
    refused = CloudView(cluster="cloud-b", up=True, synced=False)
    timeouts = planning.Timeouts(lost_cluster_s={"cloud-b": 300.0})
    steps = planning.converge(onprem, {"cloud-b": refused}, timeouts, now=100_000.0)
    assert [s.kind for s in steps] == [StepKind.NOTHING]


async def test_refused_credentials_are_an_outage() -> None:
    """R7 (tests/reliability/test_daemon_faults.py): a 401 marks the cluster down, with why."""
    cluster = Cluster("cloud-r4", api=None, clock=lambda: 1000.0)  # type: ignore[arg-type]
    cluster.health.mark_ok()
    jobs = Reflector(cluster, JOBS, max_backoff_s=0.0)

    async def refuse() -> None:
        raise errors.CredentialsRefused("cloud-r4", "401 Unauthorized")

    jobs.relist = refuse  # type: ignore[method-assign]
    task = asyncio.create_task(jobs.run())
    await asyncio.sleep(0.02)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert (cluster.health.up, cluster.health.down_since) == (False, 1000.0)
    assert "401" in cluster.health.problem
    assert cluster.health.refusals == {}
