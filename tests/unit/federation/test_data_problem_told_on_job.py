"""A data failure told on a job (`DataCopyFailed`) is told once across restarts and leader
hand-overs: what was told is kept on the on-prem Job (`federator.io/data-problem-told`).

Before, it was kept in the process's memory only: a new `Federation` over the same clusters
(a restart, or another replica taking the lead) posted the same Event again on every job held
by the failing replica."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

from federator.federation import Federation
from federator.federation.ports import OnPremJob, OnPremView
from federator.kube import convert
from federator.kube.onprem import (
    ANNOTATION_DATA_PROBLEMS_TOLD,
    DATA_PROBLEMS_TOLD_MAX_BYTES,
    OnPremCluster,
)
from tests.unit.kube import objects as o
from tests.unit.kube.fakes import FakeCloud
from tests.unit.kube.test_cloud_edge import FakeApiserver
from tests.unit.kube.test_data_copy_failures import (
    IMAGENET,
    REFUSED,
    REFUSED_AGAIN,
    Telling,
)
from tests.unit.kube.test_federation_review import HoldUntilReplicated, Replicas, held_federation

REPLICA = ("imagenet", "cloud-a")
# The replicator counts a replica's tries in memory: a new process's first try of a replica
# still refused says "1 failure in a row" again, with its own next try.
REFUSED_AFTER_RESTART = REFUSED.replace("08:00:40", "09:30:10")
NO_BUCKET = REFUSED_AGAIN.replace("AccessDenied", "NoSuchBucket")

Told = tuple[tuple[str, str, str], ...]


class Noting(Telling):
    """The on-prem fake that keeps, per Job, what `note_data_problems` wrote, as the adapter
    keeps it in an annotation, and shows it in its snapshots."""

    def __init__(self) -> None:
        super().__init__({"j1": IMAGENET, "j2": IMAGENET})
        self.notes: dict[str, Told] = {}
        self.note_writes = 0

    async def snapshot(self, now: float) -> OnPremView:
        view = await super().snapshot(now)
        jobs = tuple(
            replace(job, data_problems_told=self.notes.get(job.key, ())) for job in view.jobs
        )
        return replace(view, jobs=jobs)

    async def note_data_problems(self, job: OnPremJob, told: Told) -> OnPremJob:
        self.notes[job.key] = told
        self.note_writes += 1
        fake = self.jobs[job.key]
        fake.version += 1
        return replace(job, data_problems_told=told, resource_version=str(fake.version))


def restarted(onprem: Noting, cloud: FakeCloud, replicas: Replicas) -> Federation:
    """A new process (or the replica that takes the lead) over the same clusters."""
    return held_federation(onprem, cloud, replicas, HoldUntilReplicated())


async def test_a_failure_told_before_a_restart_is_not_told_again() -> None:
    onprem, cloud, replicas = Noting(), FakeCloud("cloud-a"), Replicas()
    onprem.add("j1", 8)
    onprem.add("j2", 8)
    replicas.problems[REPLICA] = REFUSED
    await restarted(onprem, cloud, replicas).run_once(100.0)
    assert len(onprem.data_told()) == 2, "each held job is told"
    for at in (110.0, 120.0):  # restarted twice, the failure the same
        report = await restarted(onprem, cloud, replicas).run_once(at)
        assert len(report.failures) == 2, "still a failure of each job's pass"
    assert len(onprem.data_told()) == 2, "not told again after a restart"
    assert onprem.note_writes == 2, "one note per job, not one per pass"


async def test_a_new_processs_first_try_of_the_same_error_is_not_told_again() -> None:
    onprem, cloud, replicas = Noting(), FakeCloud("cloud-a"), Replicas()
    onprem.add("j1", 8)
    fed = restarted(onprem, cloud, replicas)
    for at, problem in ((100.0, REFUSED), (110.0, REFUSED_AGAIN)):
        replicas.problems[REPLICA] = problem
        await fed.run_once(at)
    assert len(onprem.data_told()) == 2, "each try's failure, in one process"
    fed = restarted(onprem, cloud, replicas)
    replicas.problems[REPLICA] = REFUSED_AFTER_RESTART
    await fed.run_once(120.0)
    assert len(onprem.data_told()) == 2, "the job has heard of this error"
    replicas.problems[REPLICA] = REFUSED_AGAIN  # the new process's next try fails too
    await fed.run_once(130.0)
    assert len(onprem.data_told()) == 3


async def test_a_different_failure_after_a_restart_is_told() -> None:
    onprem, cloud, replicas = Noting(), FakeCloud("cloud-a"), Replicas()
    onprem.add("j1", 8)
    replicas.problems[REPLICA] = REFUSED
    await restarted(onprem, cloud, replicas).run_once(100.0)
    await restarted(onprem, cloud, replicas).run_once(110.0)
    (first,) = onprem.notes["team-a/j1"]
    replicas.problems[REPLICA] = NO_BUCKET  # another error
    await restarted(onprem, cloud, replicas).run_once(120.0)
    told = [t.message for t in onprem.data_told()]
    assert len(told) == 2
    assert REFUSED in told[0]
    assert NO_BUCKET in told[1]
    (newer,) = onprem.notes["team-a/j1"]
    assert newer[:2] == REPLICA
    assert newer != first, "the newer failure in place of the older"


async def test_a_failure_that_clears_and_comes_back_after_a_restart_is_told_again() -> None:
    onprem, cloud, replicas = Noting(), FakeCloud("cloud-a"), Replicas()
    onprem.add("j1", 8)
    replicas.problems[REPLICA] = REFUSED
    await restarted(onprem, cloud, replicas).run_once(100.0)
    assert [told[:2] for told in onprem.notes["team-a/j1"]] == [REPLICA], "kept on the Job"
    del replicas.problems[REPLICA]  # copying again
    await restarted(onprem, cloud, replicas).run_once(110.0)
    assert onprem.notes["team-a/j1"] == (), "a cleared failure leaves the Job"
    replicas.problems[REPLICA] = REFUSED  # failing again, the same text, after a restart
    await restarted(onprem, cloud, replicas).run_once(120.0)
    assert len(onprem.data_told()) == 2


async def test_a_follower_keeps_nothing_on_the_jobs() -> None:
    onprem, cloud, replicas = Noting(), FakeCloud("cloud-a"), Replicas()
    onprem.add("j1", 8)
    replicas.problems[REPLICA] = REFUSED
    follower = restarted(onprem, cloud, replicas)
    follower.may_write = lambda: False
    await follower.run_once(100.0)
    assert onprem.notes == {}
    assert onprem.data_told() == []


class ClosingTheFence(FakeCloud):
    """The cloud whose config sweep, the pass's last write before the notes, is the last write
    the fence allows: it closes right after."""

    fed: Federation | None = None

    async def sweep_configs(self, keep_uids: frozenset[str]) -> int:
        assert self.fed is not None
        self.fed.may_write = lambda: False
        return await super().sweep_configs(keep_uids)


async def test_the_note_is_written_only_while_the_fence_is_open() -> None:
    onprem, cloud, replicas = Noting(), ClosingTheFence("cloud-a"), Replicas()
    onprem.add("j1", 8)
    replicas.problems[REPLICA] = REFUSED
    cloud.fed = restarted(onprem, cloud, replicas)
    report = await cloud.fed.run_once(100.0)
    assert len(onprem.data_told()) == 1
    assert "noting the data failures told to team-a/j1" in report.skipped
    assert onprem.notes == {}, "another replica may lead by now"


# ---- the on-prem adapter's annotation ---------------------------------------------------------


class MergingApiserver(FakeApiserver):
    """The in-memory apiserver with a merge patch's annotations: merged, null removes."""

    async def request(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        if method != "PATCH":
            return await super().request(method, path, **kw)
        self.writes.append(f"{method} {path}")
        meta = self.objects[path]["metadata"]
        for name, value in kw["body"]["metadata"].get("annotations", {}).items():
            if value is None:
                meta["annotations"].pop(name, None)
            else:
                meta["annotations"][name] = value
        meta["resourceVersion"] = str(int(meta["resourceVersion"]) + 1)
        return copy.deepcopy(self.objects[path])


def adapter_holding(job: dict[str, Any]) -> tuple[OnPremCluster, MergingApiserver, OnPremJob]:
    api = MergingApiserver("onprem")
    api.objects[f"/apis/batch/v1/namespaces/team-a/jobs/{job['metadata']['name']}"] = job
    onprem = OnPremCluster(api)
    onprem.jobs.put(copy.deepcopy(job))
    view = onprem._job_view(job, o.workload(job), {})
    assert view is not None, "a job waiting in Kueue"
    return onprem, api, view


def live_job(api: MergingApiserver) -> dict[str, Any]:
    (job,) = api.objects.values()
    return job


def annotation(api: MergingApiserver) -> str | None:
    return convert.annotations_of(live_job(api)).get(ANNOTATION_DATA_PROBLEMS_TOLD)


async def test_the_annotation_is_bounded_and_keeps_the_newest_failures() -> None:
    onprem, api, job = adapter_holding(o.job())
    told = tuple((f"dataset-{i:02d}-with-a-long-name", "cloud-a", f"{i:012x}") for i in range(40))
    noted = await onprem.note_data_problems(job, told)
    value = annotation(api)
    assert value is not None
    assert 0 < len(value.encode()) <= DATA_PROBLEMS_TOLD_MAX_BYTES
    assert value.endswith(",dataset-39-with-a-long-name@cloud-a=000000000027"), "the newest"
    assert noted.data_problems_told == told[-len(noted.data_problems_told) :]
    assert int(noted.resource_version) == int(job.resource_version) + 1


async def test_the_annotation_reads_back_on_the_job_and_an_empty_note_removes_it() -> None:
    onprem, api, job = adapter_holding(o.job())
    told = (("imagenet", "cloud-a", "0123456789ab"), ("coco", "cloud-b", "ba9876543210"))
    await onprem.note_data_problems(job, told)
    assert annotation(api) == "imagenet@cloud-a=0123456789ab,coco@cloud-b=ba9876543210"
    read = onprem._job_view(live_job(api), o.workload(live_job(api)), {})
    assert read is not None
    assert read.data_problems_told == told, "a new process reads it"
    writes = len(api.writes)
    await onprem.note_data_problems(job, told)
    assert len(api.writes) == writes, "the same note is not written again"
    await onprem.note_data_problems(job, ())
    assert annotation(api) is None


def test_an_annotation_edited_by_hand_reads_what_parses() -> None:
    edited = "imagenet@cloud-a=0123456789ab,,garbage,coco@=1,@cloud-b=2,x@y="
    *_, job = adapter_holding(o.job(annotations={ANNOTATION_DATA_PROBLEMS_TOLD: edited}))
    assert job.data_problems_told == (("imagenet", "cloud-a", "0123456789ab"),)
