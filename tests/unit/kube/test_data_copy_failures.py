"""A job whose data copy fails learns why: a `DataCopyFailed` Warning Event on its on-prem Job,
once per failure, and a line in the pass report's failures.

Before, the data gate answered only a bool: a job held for a dataset whose copy kept failing
showed no Event, no reason and no failure, pass after pass."""

from __future__ import annotations

from dataclasses import dataclass

from federator.core.decisions import DecisionKind
from federator.core.models import DatasetNeed
from federator.core.policy import DecisionPolicy
from federator.errors import ClusterUnavailable
from federator.federation import Federation, FederationSettings
from federator.federation.ports import CopyState, OnPremJob
from tests.unit.kube.fakes import FakeCloud
from tests.unit.kube.test_federation_loop import Offers, Scripted, offer
from tests.unit.kube.test_federation_review import (
    HoldUntilReplicated,
    Replicas,
    WithDatasets,
    held_federation,
)

REFUSED = (
    "object store cloud-a (http://127.0.0.1:9000) refused: listing s3://cloud-a-datasets/imagenet/"
    ": AccessDenied (1 failure in a row; next try after 08:00:40 UTC)"
)
REFUSED_AGAIN = REFUSED.replace("1 failure", "2 failures").replace("08:00:40", "08:01:45")


@dataclass(frozen=True)
class Told:
    job: str
    reason: str
    message: str
    warning: bool


class Telling(WithDatasets):
    """The on-prem fake with every Event's text kept; `refuse_events` makes posts fail."""

    def __init__(self, reads: dict[str, tuple[DatasetNeed, ...]]) -> None:
        super().__init__(reads)
        self.told: list[Told] = []
        self.refuse_events = False

    async def event(self, job: OnPremJob, *, reason: str, message: str, warning: bool) -> None:
        if self.refuse_events:
            raise ClusterUnavailable("onprem", "connection refused")
        await super().event(job, reason=reason, message=message, warning=warning)
        self.told.append(Told(job.key, reason, message, warning))

    def data_told(self) -> list[Told]:
        return [told for told in self.told if told.reason == "DataCopyFailed"]


IMAGENET = (DatasetNeed("imagenet", 0),)


async def test_a_job_held_for_a_failing_copy_is_told_once_per_failure() -> None:
    onprem = Telling({"j1": IMAGENET})
    cloud, replicas = FakeCloud("cloud-a"), Replicas()
    onprem.add("j1", 8)
    fed = held_federation(onprem, cloud, replicas, HoldUntilReplicated())
    replicas.problems[("imagenet", "cloud-a")] = REFUSED
    report = await fed.run_once(100.0)
    assert [d.kind for d in report.decisions] == [DecisionKind.HOLD]
    (told,) = onprem.data_told()
    assert told.job == "team-a/j1"
    assert told.warning
    assert "dataset imagenet to cloud-a" in told.message
    assert REFUSED in told.message, "the problem, with when it is tried again"
    assert "waits" in told.message
    assert report.failures == [f"team-a/j1: {told.message}"]

    for at in (110.0, 120.0, 130.0):  # the same failure, answered from the backoff
        report = await fed.run_once(at)
        assert report.failures == [f"team-a/j1: {told.message}"], "still failing this pass"
    assert len(onprem.data_told()) == 1, "one Event per failure, not one per pass"

    replicas.problems[("imagenet", "cloud-a")] = REFUSED_AGAIN  # tried again, failed again
    await fed.run_once(140.0)
    again = told.message.replace(REFUSED, REFUSED_AGAIN)
    assert [t.message for t in onprem.data_told()] == [told.message, again]

    del replicas.problems[("imagenet", "cloud-a")]  # the next try copies
    report = await fed.run_once(150.0)
    assert report.failures == []
    assert len(onprem.data_told()) == 2


async def test_every_job_held_for_the_failing_replica_is_told_while_it_is_asked_once() -> None:
    onprem = Telling({"j1": IMAGENET, "j2": IMAGENET})
    cloud, replicas = FakeCloud("cloud-a"), Replicas()
    onprem.add("j1", 8)
    onprem.add("j2", 8)
    replicas.problems[("imagenet", "cloud-a")] = REFUSED
    fed = held_federation(onprem, cloud, replicas, HoldUntilReplicated())
    report = await fed.run_once(100.0)
    assert replicas.asked == [("imagenet", "cloud-a")]
    assert sorted(t.job for t in onprem.data_told()) == ["team-a/j1", "team-a/j2"]
    assert len(report.failures) == 2


def bursting(onprem: Telling, cloud: FakeCloud, replicas: Replicas) -> Federation:
    """Bursts at once: the copy is created suspended, waiting for its data."""
    return Federation(
        onprem=onprem,
        clouds={cloud.name: cloud},
        policy=DecisionPolicy(),
        offers=Offers([offer(cloud.name)]),
        settings=FederationSettings(interval_s=10, gc_grace_s=0),
        data=replicas,
        sizes=replicas,
        decide=Scripted(),
    )


async def test_a_suspended_copy_whose_data_fails_tells_its_job_once() -> None:
    onprem = Telling({"j1": IMAGENET})
    cloud, replicas = FakeCloud("cloud-a"), Replicas()
    job = onprem.add("j1", 8)
    replicas.problems[("imagenet", "cloud-a")] = REFUSED
    fed = bursting(onprem, cloud, replicas)
    await fed.run_once(100.0)
    (copy,) = cloud.copies.values()
    assert copy.suspended, "placed, waiting for its data"
    assert [t.reason for t in onprem.told] == ["DataCopyFailed", "Bursted"]
    report = await fed.run_once(110.0)  # resume step: the data is still not there
    assert report.failures == [f"team-a/j1: {onprem.data_told()[0].message}"]
    assert len(onprem.data_told()) == 1
    replicas.problems.clear()
    replicas.complete.add(("imagenet", "cloud-a"))
    await fed.run_once(120.0)
    assert copy.state is CopyState.PENDING, "resumed once its data is there"
    assert job.record is not None


async def test_an_event_that_cannot_be_posted_is_told_next_pass_and_placing_goes_on() -> None:
    onprem = Telling({"j1": IMAGENET})
    cloud, replicas = FakeCloud("cloud-a"), Replicas()
    onprem.add("j1", 8)
    replicas.problems[("imagenet", "cloud-a")] = REFUSED
    fed = bursting(onprem, cloud, replicas)
    onprem.refuse_events = True
    await fed.run_once(100.0)
    assert len(cloud.copies) == 1, "the copy is created (suspended) all the same"
    onprem.refuse_events = False
    await fed.run_once(110.0)
    assert len(onprem.data_told()) == 1


async def test_the_same_failure_after_a_recovery_is_told_again() -> None:
    onprem = Telling({"j1": IMAGENET})
    cloud, replicas = FakeCloud("cloud-a"), Replicas()
    onprem.add("j1", 8)
    replicas.problems[("imagenet", "cloud-a")] = REFUSED
    fed = held_federation(onprem, cloud, replicas, HoldUntilReplicated())
    await fed.run_once(100.0)
    del replicas.problems[("imagenet", "cloud-a")]  # copying again
    await fed.run_once(110.0)
    replicas.problems[("imagenet", "cloud-a")] = REFUSED  # and failing again, the same text
    await fed.run_once(120.0)
    assert len(onprem.data_told()) == 2


async def test_what_was_told_to_a_job_that_is_gone_is_forgotten() -> None:
    onprem = Telling({"j1": IMAGENET, "j2": IMAGENET})
    cloud, replicas = FakeCloud("cloud-a"), Replicas()
    onprem.add("j1", 8)
    onprem.add("j2", 8)
    replicas.problems[("imagenet", "cloud-a")] = REFUSED
    fed = held_federation(onprem, cloud, replicas, HoldUntilReplicated())
    await fed.run_once(100.0)
    del onprem.jobs["team-a/j1"]
    await fed.run_once(110.0)
    assert set(fed.data_problems._told) == {("uid-j2", "imagenet", "cloud-a")}
