"""The on-prem adapter keeps a dropped record on the Job, in the patch that drops it.

`max_replacements` can only bound a Kueue job across its returns on-prem if the count survives
the return: in Kubernetes, not in memory (a restart, a new leader). The drop writes the record
it removes as `federator.io/returned-record` in the same merge patch (no crash between the
two), the snapshot reads it back as `OnPremJob.returned_record`, and a new record replaces it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from federator.federation.records import Phase, PlacementRecord
from federator.kube import convert
from federator.kube.clients import JSON, Cluster
from federator.kube.onprem import OnPremCluster
from tests.unit.kube import objects as o

JOB = "/apis/batch/v1/namespaces/team-a/jobs/train"
# Placed after the Job's creation (T0): a record without a uid placed before it is another Job's.
REQUEUED = PlacementRecord("cloud-a", "spot", 4, Phase.REQUEUED, o.T0_S + 10.0, 4, preemptions=3)


class Apiserver(Cluster):
    """One Job, merge-patched as an apiserver does (a null annotation is removed)."""

    def __init__(self, job: dict[str, Any]) -> None:
        super().__init__("onprem", api=None)  # type: ignore[arg-type]
        self.job = job
        self.patches: list[dict[str, Any]] = []

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
        assert (method, path) == ("PATCH", JOB)
        self.patches.append(copy.deepcopy(body))
        annotations = self.job["metadata"]["annotations"]
        for name, value in body["metadata"]["annotations"].items():
            if value is None:
                annotations.pop(name, None)
            else:
                annotations[name] = value
        meta = self.job["metadata"]
        meta["resourceVersion"] = str(int(meta["resourceVersion"]) + 1)
        return copy.deepcopy(self.job)


def placed_job() -> dict[str, Any]:
    notes = {convert.ANNOTATION_RECORD: REQUEUED.to_json()}
    return o.job(annotations=notes)


async def onprem_with(job: dict[str, Any]) -> tuple[OnPremCluster, Apiserver]:
    api = Apiserver(job)
    onprem = OnPremCluster(api)
    onprem.jobs.put(copy.deepcopy(job))
    onprem.workloads.put(o.workload(job))  # pending: the job waits once its record is gone
    return onprem, api


async def test_dropping_the_record_keeps_it_on_the_job_in_the_same_patch() -> None:
    onprem, api = await onprem_with(placed_job())
    (seen,) = (await onprem.snapshot(o.T0_S)).jobs
    assert seen.record == REQUEUED
    dropped = await onprem.write_record(seen, None)
    assert len(api.patches) == 1
    notes = api.patches[0]["metadata"]["annotations"]
    assert notes[convert.ANNOTATION_RECORD] is None
    kept = json.loads(notes[convert.ANNOTATION_RETURNED_RECORD])
    assert kept.pop("uid") == seen.uid, "bound to this Job"
    assert kept == json.loads(REQUEUED.to_json())
    assert api.patches[0]["metadata"]["resourceVersion"] == seen.resource_version
    assert dropped.returned_record == REQUEUED
    (waiting,) = (await onprem.snapshot(o.T0_S)).jobs
    assert waiting.record is None
    assert waiting.waiting
    assert waiting.returned_record == REQUEUED, "read back from the Job"


async def test_a_new_record_replaces_the_kept_one() -> None:
    onprem, api = await onprem_with(placed_job())
    (seen,) = (await onprem.snapshot(o.T0_S)).jobs
    dropped = await onprem.write_record(seen, None)
    placing = PlacementRecord("cloud-a", "spot", 5, Phase.PLACING, 20.0, 4, preemptions=3)
    placed = await onprem.write_record(dropped, placing)
    assert placed.returned_record is None
    assert convert.ANNOTATION_RETURNED_RECORD not in api.job["metadata"]["annotations"]
    (view,) = (await onprem.snapshot(o.T0_S)).jobs
    assert (view.record, view.returned_record) == (placing, None)


async def test_an_unreadable_kept_record_counts_as_none() -> None:
    job = o.job(annotations={convert.ANNOTATION_RETURNED_RECORD: "{not json"})
    onprem, _ = await onprem_with(job)
    (view,) = (await onprem.snapshot(o.T0_S)).jobs
    assert view.returned_record is None


def test_the_kept_record_is_not_copied_to_the_cloud_copy() -> None:
    job = o.job(annotations={convert.ANNOTATION_RETURNED_RECORD: REQUEUED.to_json()})
    copied = convert.cloud_job(
        job,
        name="train-5",
        instance="fed",
        source_cluster="onprem",
        pool="spot",
        attempt=5,
        suspended=False,
    )
    assert convert.ANNOTATION_RETURNED_RECORD not in copied["metadata"]["annotations"]


async def test_a_kept_record_of_another_job_counts_as_none() -> None:
    """Review finding 6: `kubectl get -o json | kubectl replace --force` re-creates a Job with
    the old one's annotations; the new Job (another uid) must not inherit its count and be
    told it is out of re-placements."""
    old = o.job()
    kept = convert.returned_record_note(REQUEUED, "uid-of-the-deleted-job")
    new = o.job(annotations={convert.ANNOTATION_RETURNED_RECORD: kept})
    assert convert.meta(new)["uid"] == convert.meta(old)["uid"] != "uid-of-the-deleted-job"
    onprem, _ = await onprem_with(new)
    (view,) = (await onprem.snapshot(o.T0_S)).jobs
    assert view.returned_record is None
    own = o.job(
        annotations={
            convert.ANNOTATION_RETURNED_RECORD: convert.returned_record_note(
                REQUEUED, str(convert.meta(old)["uid"])
            )
        }
    )
    onprem, _ = await onprem_with(own)
    (view,) = (await onprem.snapshot(o.T0_S)).jobs
    assert view.returned_record == REQUEUED
