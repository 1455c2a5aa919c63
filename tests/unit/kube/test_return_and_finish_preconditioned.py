"""A return on-prem and a terminal status are written only on the version they were decided on.

With two writers (leader election off, `run --once` next to a daemon), a replica deciding on a
stale view used to win anyway: `note_return` had no precondition and returned the Job's
current resourceVersion, which the record's drop then used, so B removed the PLACED record
A had just written (and could strand the job with its Workload inactive); `finish` took its
precondition from a fresh read. Both now carry the observed version: a 409 means "someone
changed it: decide again next pass".
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Mapping
from typing import Any

import pytest

from federator.core.models import PendingJob
from federator.federation.ports import OnPremJob, Terminal
from federator.federation.records import Phase, PlacementRecord
from federator.kube import convert
from federator.kube import errors as kube_errors
from federator.kube.clients import JSON, Cluster
from federator.kube.onprem import OnPremCluster

JOB = "/apis/batch/v1/namespaces/team-a/jobs/train"


class Apiserver(Cluster):
    """One Job; a PATCH carrying another resourceVersion gets 409, each write bumps it."""

    def __init__(self) -> None:
        super().__init__("onprem", api=None)  # type: ignore[arg-type]
        self.job: dict[str, Any] = {
            "metadata": {"name": "train", "namespace": "team-a", "resourceVersion": "10"},
            "spec": {"suspend": True},
            "status": {},
        }

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = JSON,
        creating: bool = False,
    ) -> dict[str, Any]:
        assert path in (JOB, JOB + "/status")
        meta = self.job["metadata"]
        if method == "PATCH":
            wanted = body["metadata"].get("resourceVersion")
            if wanted is not None and wanted != meta["resourceVersion"]:
                raise kube_errors.Conflict(self.name, 409, "the object has been modified")
            meta.setdefault("annotations", {}).update(body["metadata"].get("annotations", {}))
            self.job["status"].update(body.get("status", {}))
            meta["resourceVersion"] = str(int(meta["resourceVersion"]) + 1)
        return copy.deepcopy(self.job)

    def another_writer_places_the_job(self) -> None:
        self.job["metadata"]["resourceVersion"] = "11"


def observed(version: str = "10") -> OnPremJob:
    record = PlacementRecord("cloud-a", "spot", 1, Phase.REQUEUED, 0.0, 8)
    return OnPremJob(
        key="team-a/train",
        namespace="team-a",
        name="train",
        uid="u1",
        resource_version=version,
        gpus=8,
        record=record,
        spec=PendingJob(key="team-a/train", gpus=8, submitted_at=0.0, runtime_estimate_s=600.0),
        workload="job-train-1",
    )


TERMINAL = Terminal(succeeded=True, started_at=0.0, finished_at=60.0, completions=1, message="")


def test_a_return_decided_on_a_stale_view_is_a_conflict_and_notes_nothing() -> None:
    api = Apiserver()
    api.another_writer_places_the_job()
    with pytest.raises(kube_errors.Conflict):
        asyncio.run(OnPremCluster(api).note_return(observed("10"), why="stays on-prem"))
    assert convert.ANNOTATION_RETURNED not in api.job["metadata"].get("annotations", {})


def test_a_return_on_the_current_version_notes_it_and_gives_the_new_version() -> None:
    api = Apiserver()
    job = asyncio.run(OnPremCluster(api).note_return(observed("10"), why="stays on-prem"))
    assert job.resource_version == "11"
    assert api.job["metadata"]["annotations"][convert.ANNOTATION_RETURNED].endswith("on-prem")


def test_a_terminal_status_decided_on_a_stale_view_is_a_conflict() -> None:
    api = Apiserver()
    api.another_writer_places_the_job()
    with pytest.raises(kube_errors.Conflict):
        asyncio.run(OnPremCluster(api).finish(observed("10"), TERMINAL))
    assert not convert.job_finished(api.job)


def test_a_terminal_status_on_the_current_version_is_written() -> None:
    api = Apiserver()
    job = asyncio.run(OnPremCluster(api).finish(observed("10"), TERMINAL))
    assert job.finished
    assert convert.job_finished(api.job)
