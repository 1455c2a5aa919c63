"""A cluster that refuses one read federator must make stays down until that read works.

Before, the refused Reflector marked the cluster down and every other Reflector's next watch
event marked it up again: `cluster_down`/`cluster_up` every backoff (~30 s), `down_since`
reset each time, so its jobs were neither acted on (the cache was incomplete) nor ever taken
as lost.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog.testing

from federator.kube import errors as kube_errors
from federator.kube.clients import Cluster, Health
from federator.kube.watching import JOBS, NODES, Reflector


def test_other_answers_do_not_mark_up_a_cluster_that_refuses_a_read() -> None:
    now = [100.0]
    health = Health("cloud-a", clock=lambda: now[0])
    health.mark_ok()
    health.refused(NODES.path, "403 Forbidden: nodes is forbidden")
    now[0] = 160.0
    health.mark_ok()  # a Jobs watch event
    assert (health.up, health.down_since) == (False, 100.0)
    assert "forbidden" in health.last_error
    health.accepted(NODES.path)
    assert (health.up, health.down_since, health.refusals) == (True, None, {})


def test_a_read_accepted_again_waits_for_every_other_refused_read() -> None:
    health = Health("cloud-a", clock=lambda: 5.0)
    health.refused(NODES.path, "403 nodes")
    health.refused(JOBS.path, "403 jobs")
    health.accepted(NODES.path)
    assert not health.up
    health.accepted(JOBS.path)
    assert health.up


async def test_a_refused_reflector_keeps_the_cluster_down_while_another_streams() -> None:
    cluster = Cluster("cloud-a", api=None, clock=lambda: 1000.0)  # type: ignore[arg-type]
    cluster.health.mark_ok()
    nodes = Reflector(cluster, NODES, max_backoff_s=0.0)
    nodes.synced = True  # it had listed before RBAC changed

    async def refuse() -> None:
        raise kube_errors.Refused("cloud-a", 403, "nodes is forbidden")

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
    assert events == ["cluster_down"], events
    assert cluster.health.down_since == 1000.0
    assert not nodes.synced, "a refused Reflector's cache no longer follows the cluster"


async def test_the_cluster_is_up_again_once_the_refused_read_lists() -> None:
    cluster = Cluster("cloud-a", api=None, clock=lambda: 1000.0)  # type: ignore[arg-type]
    nodes = Reflector(cluster, NODES, max_backoff_s=0.0)
    answers: list[BaseException | None] = [kube_errors.Refused("cloud-a", 403, "forbidden"), None]
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
    assert cluster.health.up
    assert cluster.health.refusals == {}
