"""Holding a job on-prem whose Workload changed since it was read is tried again, not given up.

Seen in R9 (two replicas, no leader election): replica A carried on a placement B had just
recorded, B deactivated the Workload first, A's preconditioned PATCH got 409 and A took it as
"the job may start on-prem": it dropped the record. B's copy was then collected as unvouched
for, and the job - Workload inactive, no record - was never admitted on-prem nor decided
again. A conflict now raises, so the pass tries the step again on fresh data.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Mapping
from typing import Any

import pytest

from federator.core.models import PendingJob
from federator.federation.ports import OnPremJob
from federator.kube import errors as kube_errors
from federator.kube.clients import JSON, Cluster
from federator.kube.onprem import OnPremCluster

WORKLOAD = "/apis/kueue.x-k8s.io/v1beta2/namespaces/team-a/workloads/job-train-1"
JOB = "/apis/batch/v1/namespaces/team-a/jobs/train"


class Apiserver(Cluster):
    """A Workload and its Job; a PATCH carrying an old resourceVersion gets 409."""

    def __init__(self, *, workload_version: str) -> None:
        super().__init__("onprem", api=None)  # type: ignore[arg-type]
        self.objects: dict[str, dict[str, Any]] = {
            WORKLOAD: {"metadata": {"resourceVersion": workload_version}, "spec": {}},
            JOB: {"metadata": {}, "spec": {"suspend": True}, "status": {}},
        }
        self.changed_before_patch = False

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
        stored = self.objects[path]
        if method == "PATCH":
            if self.changed_before_patch:  # the other replica's deactivation landed first
                stored["metadata"]["resourceVersion"] = "2"
                stored["spec"]["active"] = False
            if body["metadata"]["resourceVersion"] != stored["metadata"]["resourceVersion"]:
                raise kube_errors.Conflict(self.name, 409, "the object has been modified")
            stored["spec"].update(body["spec"])
        return copy.deepcopy(stored)


def job() -> OnPremJob:
    return OnPremJob(
        key="team-a/train",
        namespace="team-a",
        name="train",
        uid="u1",
        resource_version="10",
        gpus=8,
        record=None,
        spec=PendingJob(key="team-a/train", gpus=8, submitted_at=0.0, runtime_estimate_s=600.0),
        workload="job-train-1",
    )


def test_a_workload_changed_under_the_hold_raises_conflict_instead_of_giving_up() -> None:
    api = Apiserver(workload_version="1")
    api.changed_before_patch = True
    with pytest.raises(kube_errors.Conflict):
        asyncio.run(OnPremCluster(api).hold_on_prem(job()))


def test_the_next_try_on_fresh_data_holds_the_job() -> None:
    """The other writer already deactivated it: nothing to patch, and the job is held."""
    api = Apiserver(workload_version="2")
    api.objects[WORKLOAD]["spec"]["active"] = False
    assert asyncio.run(OnPremCluster(api).hold_on_prem(job())) is True


def test_an_unchanged_workload_is_deactivated_and_held() -> None:
    api = Apiserver(workload_version="1")
    assert asyncio.run(OnPremCluster(api).hold_on_prem(job())) is True
    assert api.objects[WORKLOAD]["spec"]["active"] is False
