"""A cluster whose watches keep working is up, whatever one failed write said before.

Before, only `Cluster.request` marked a cluster up: one 429/5xx/timeout on a write left it
"down" while its watches streamed on, and after `unreachable_timeout` every copy there was
taken as lost and run again elsewhere. A cluster whose apiserver is really gone still goes
down: its watches cannot open.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from federator import errors
from federator.core.models import OnPremState, PendingJob
from federator.federation import planning
from federator.federation.planning import StepKind
from federator.federation.ports import OnPremJob, OnPremView
from federator.federation.records import Phase, PlacementRecord
from federator.kube import convert
from federator.kube.clients import Cluster
from federator.kube.cloud import CloudCluster, CloudSettings
from federator.kube.onprem import OnPremCluster
from federator.kube.watching import JOBS, Reflector


class Lines:
    def __init__(self, lines: list[dict[str, Any]]) -> None:
        self._lines = [json.dumps(line).encode() + b"\n" for line in lines]

    async def readline(self) -> bytes:
        return self._lines.pop(0) if self._lines else b""  # b"": the server's watch timeout


class Answer:
    """A streamed answer (what `call_api(..., _preload_content=False)` returns)."""

    def __init__(self, status: int, lines: list[dict[str, Any]]) -> None:
        self.status = status
        self.content = Lines(lines)

    def release(self) -> None:
        pass

    def close(self) -> None:
        pass


class Apiserver:
    """An ApiClient answering from a script: an exception is raised, an `Answer` returned."""

    def __init__(self, *script: BaseException | Answer) -> None:
        self.script = list(script)

    async def call_api(self, *args: Any, **kwargs: Any) -> Answer:
        item = self.script.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item

    async def close(self) -> None:
        pass


def bookmark(version: str) -> dict[str, Any]:
    return {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": version}}}


async def a_cluster_down_after_one_timed_out_write(*then: BaseException | Answer) -> Cluster:
    cluster = Cluster("cloud-a", Apiserver(TimeoutError(), *then), clock=lambda: 1000.0)  # type: ignore[arg-type]
    cluster.health.mark_ok()  # it was up: its list succeeded
    with pytest.raises(errors.ClusterUnavailable):
        await cluster.request("POST", "/apis/batch/v1/namespaces/team-a/jobs", body={})
    assert (cluster.health.up, cluster.health.down_since) == (False, 1000.0)
    return cluster


async def test_a_watch_that_delivers_a_bookmark_marks_the_cluster_up_again() -> None:
    cluster = await a_cluster_down_after_one_timed_out_write(Answer(200, [bookmark("120")]))
    reflector = Reflector(cluster, JOBS)
    reflector.resource_version = "100"

    await reflector._watch_once()

    assert (cluster.health.up, cluster.health.down_since) == (True, None)
    assert reflector.resource_version == "120"


async def test_an_idle_watch_reopened_after_the_server_timeout_marks_the_cluster_up_again() -> None:
    cluster = await a_cluster_down_after_one_timed_out_write(Answer(200, []))
    reflector = Reflector(cluster, JOBS)
    reflector.resource_version = "100"

    await reflector._watch_once()

    assert cluster.health.up


@pytest.mark.parametrize(
    "answer",
    [
        aiohttp.ClientConnectionError("Cannot connect to host cloud-a:443"),
        Answer(503, [{"kind": "Status", "code": 503, "reason": "ServiceUnavailable"}]),
    ],
    ids=["nothing-listens", "503"],
)
async def test_a_watch_that_cannot_open_leaves_the_cluster_down_since_the_first_failure(
    answer: BaseException | Answer,
) -> None:
    cluster = await a_cluster_down_after_one_timed_out_write(answer)
    reflector = Reflector(cluster, JOBS)
    reflector.resource_version = "100"

    with pytest.raises(errors.ClusterUnavailable):
        await reflector._watch_once()

    assert (cluster.health.up, cluster.health.down_since) == (False, 1000.0)


# ---- the federation's view: a running copy is not taken as lost -------------------------------


def running_copy() -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": "team-a",
            "name": "train-u1-1",
            "resourceVersion": "90",
            "labels": {
                convert.LABEL_SOURCE_UID: "u1",
                convert.LABEL_ATTEMPT: "1",
                convert.LABEL_POOL: "a100-spot",
            },
        },
        "status": {"active": 1, "startTime": "2026-12-01T00:00:00Z"},
    }


def placed_on_cloud_a() -> OnPremView:
    record = PlacementRecord("cloud-a", "a100-spot", 1, Phase.PLACED, placed_at=0.0, gpus=8)
    job = OnPremJob(
        key="team-a/train",
        namespace="team-a",
        name="train",
        uid="u1",
        resource_version="7",
        gpus=8,
        record=record,
        spec=PendingJob(key="team-a/train", gpus=8, submitted_at=0.0, runtime_estimate_s=60.0),
    )
    return OnPremView(up=True, synced=True, state=OnPremState(16, 0), jobs=(job,))


async def test_one_failed_write_on_an_observed_cloud_takes_no_copy_there_as_lost() -> None:
    """Before: 10 minutes after one timed-out write (unreachable_timeout 5 minutes) the PLACED
    job whose copy runs on cloud-a was LOST, to be run again elsewhere."""
    cluster = await a_cluster_down_after_one_timed_out_write(Answer(200, [bookmark("120")]))
    cloud = CloudCluster(
        cluster,
        source=OnPremCluster(Cluster("onprem", None)),
        settings=CloudSettings(),  # type: ignore[arg-type]
    )
    cloud.copies.items["team-a/train-u1-1"] = running_copy()
    for reflector in cloud.reflectors:
        reflector.synced = True

    await cloud.copies._watch_once()  # its watch goes on working
    view = await cloud.snapshot(now=1600.0)
    (step,) = planning.converge(
        placed_on_cloud_a(), {"cloud-a": view}, planning.Timeouts({"cloud-a": 300.0}), now=1600.0
    )

    assert step.kind is StepKind.MIRROR, step.reason
    assert view.up
