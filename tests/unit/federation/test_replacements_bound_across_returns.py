"""`burst.replacement.max_replacements` bounds a Kueue job across its returns on-prem.

A Kueue job's record was dropped whole when it went back on-prem, so a job sent home out of
re-placements was a plain waiting job again, and burst as a new one the next pass: burst,
preemption, requeue x3, return, burst, ... for ever (review finding 6a; the repro: a record
REQUEUED at attempt 4 with max_replacements 3 bursted again two passes later). The dropped
record now stays on the Job (`federator.io/returned-record`): past the bound the job stays
on-prem and its decision says why; returned for another reason, its next burst continues the
count and the preemptions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from federator.core.decisions import DecisionKind, Round
from federator.core.models import PendingJob
from federator.core.policy import DecisionPolicy
from federator.federation import Federation, FederationSettings
from federator.federation.ports import CopyState
from federator.federation.records import Phase, PlacementRecord
from tests.unit.kube.fakes import FakeCloud, FakeOnPrem
from tests.unit.kube.test_federation_loop import Offers, Scripted, federation, offer


def requeued(attempt: int, *, preemptions: int, earlier_usd: float = 0.0) -> PlacementRecord:
    return PlacementRecord(
        "cloud-a",
        "spot",
        attempt,
        Phase.REQUEUED,
        placed_at=10.0,
        gpus=8,
        preemptions=preemptions,
        history=("cloud-a/spot",) * attempt,
        earlier_usd=earlier_usd,
    )


class SeeingSpecs(Scripted):
    """The script, keeping the last spec of each job it was asked about."""

    def __init__(self) -> None:
        super().__init__()
        self.specs: dict[str, PendingJob] = {}

    def __call__(self, jobs: Sequence[PendingJob], *rest: Any) -> Round:
        self.specs.update({spec.key: spec for spec in jobs})
        return super().__call__(jobs, *rest)


def with_the_cost_model(onprem: FakeOnPrem, cloud: FakeCloud, **kw: object) -> Federation:
    """The loop with the real decision core (not a script), as the daemon runs it."""
    settings = FederationSettings(interval_s=10, replace_backoff_s=5, gc_grace_s=0, **kw)  # type: ignore[arg-type]
    return Federation(
        onprem=onprem,
        clouds={cloud.name: cloud},
        policy=DecisionPolicy(),
        offers=Offers([offer(cloud.name)]),
        settings=settings,
    )


async def test_a_job_sent_home_out_of_replacements_never_bursts_again() -> None:
    onprem, cloud = FakeOnPrem(free_gpus=0), FakeCloud("cloud-a")
    job = onprem.add("j1", 8, record=requeued(4, preemptions=3), active_workload=False)
    fresh = onprem.add("j2", 8)  # the control: the same round bursts a job that may
    fed = with_the_cost_model(onprem, cloud, max_replacements=3)
    await fed.run_once(100.0)
    assert job.returned == "too many re-placements"
    assert job.record is None
    assert job.active_workload, "back in Kueue's queue"
    assert fresh.record is not None, "the cost model bursts a job that may burst"
    for now in (110.0, 120.0):
        report = await fed.run_once(now)
        assert job.record is None, f"bursted again at {now} as a new job"
        decision = {d.job_key: d for d in report.decisions}[job.key]
        assert decision.kind is DecisionKind.STAY
        assert decision.reason == (
            "stays on-prem: out of re-placements "
            "(its copy was lost 4 times; burst.replacement.max_replacements: 3)"
        )
    assert [c for c in cloud.created if c.startswith("team-a/j1-")] == []


async def test_the_bound_holds_whatever_a_decision_says() -> None:
    """The model is told the job may not burst; a burst decided anyway (a script, a bug) is
    refused by the move, as for an opt-out."""
    onprem, cloud = FakeOnPrem(free_gpus=0), FakeCloud("cloud-a")
    job = onprem.add("j1", 8, record=requeued(2, preemptions=2), active_workload=False)
    decide = SeeingSpecs()
    fed = federation(onprem, [cloud], [offer("cloud-a")], decide, max_replacements=1)
    await fed.run_once(100.0)
    assert job.record is None
    report = await fed.run_once(110.0)
    assert job.record is None
    assert cloud.created == []
    assert any("may not leave on-prem" in failure for failure in report.failures)
    assert decide.specs[job.key].burst_allowed is False, "the model is told"


async def test_a_job_sent_home_by_a_decision_continues_its_count_when_it_bursts_again() -> None:
    onprem, cloud = FakeOnPrem(free_gpus=0), FakeCloud("cloud-a")
    job = onprem.add(
        "j1", 8, record=requeued(2, preemptions=1, earlier_usd=5.0), active_workload=False
    )
    decide = Scripted(kind=DecisionKind.STAY)
    fed = federation(onprem, [cloud], [offer("cloud-a")], decide, max_replacements=3)
    await fed.run_once(100.0)
    assert job.returned == "stay", "decided to stay after its requeue: sent home"
    assert job.record is None
    decide.bursting.add(job.key)
    await fed.run_once(110.0)
    assert job.record is not None
    assert job.record.attempt == 3, "the count goes on, not back to 1"
    assert job.record.preemptions == 1
    assert job.record.history == ("cloud-a/spot", "cloud-a/spot")
    # The spend book took what the job had spent when its record went: not counted again.
    assert job.record.earlier_usd == 0.0
    assert job.returned_record is None, "the new record holds the count now"


async def test_a_pulled_back_job_continues_its_count_too() -> None:
    onprem, cloud = FakeOnPrem(free_gpus=0), FakeCloud("cloud-a")
    job = onprem.add("j1", 8)
    decide = Scripted()
    fed = federation(onprem, [cloud], [offer("cloud-a")], decide)
    await fed.run_once(100.0)
    onprem.free_gpus = 8
    await fed.run_once(110.0)
    assert job.record is None, "pulled back"
    onprem.free_gpus = 0
    await fed.run_once(120.0)
    assert job.record is not None
    assert job.record.attempt == 2


async def test_a_pull_back_is_no_lost_copy() -> None:
    """Review finding 7: the bound counted placements, so with max_replacements 0 a job pulled
    back once (its copy never lost) could never burst again, and pull-backs used up the
    re-placements a later preemption needs."""
    onprem, cloud = FakeOnPrem(free_gpus=0), FakeCloud("cloud-a")
    job = onprem.add("j1", 8)
    fed = federation(onprem, [cloud], [offer("cloud-a")], Scripted(), max_replacements=0)
    await fed.run_once(100.0)
    onprem.free_gpus = 8
    await fed.run_once(110.0)
    assert job.record is None, "pulled back"
    assert job.returned_record is not None
    assert job.returned_record.losses == 0
    onprem.free_gpus = 0
    await fed.run_once(120.0)
    assert job.record is not None, "bursts again: it lost no copy"
    assert (job.record.attempt, job.record.losses) == (2, 0)


async def test_each_lost_copy_is_counted_once() -> None:
    onprem, cloud = FakeOnPrem(free_gpus=0), FakeCloud("cloud-a")
    job = onprem.add("j1", 8)
    fed = federation(
        onprem, [cloud], [offer("cloud-a")], Scripted(), max_replacements=1, block_pool_for_s=0
    )
    await fed.run_once(100.0)
    cloud.set_state("uid-j1", CopyState.PREEMPTED)
    await fed.run_once(110.0)
    assert job.record is not None
    assert (job.record.phase, job.record.losses) == (Phase.REQUEUED, 1)
    await fed.run_once(200.0)  # past the backoff: re-placed once, as max_replacements allows
    assert job.record is not None
    assert (job.record.phase, job.record.attempt, job.record.losses) == (Phase.PLACED, 2, 1)


async def test_a_pull_back_does_not_use_up_a_requeued_job_s_re_placement() -> None:
    """Review of 76b7bc5: the requeued record's own bound (`_may_replace`) still read the
    attempt, so a job pulled back once and then preempted once was sent home with
    max_replacements 1, though it had lost one copy."""
    onprem, cloud = FakeOnPrem(free_gpus=0), FakeCloud("cloud-a")
    job = onprem.add("j1", 8)
    fed = federation(
        onprem, [cloud], [offer("cloud-a")], Scripted(), max_replacements=1, block_pool_for_s=0
    )
    await fed.run_once(100.0)
    onprem.free_gpus = 8
    await fed.run_once(110.0)
    assert job.record is None, "pulled back"
    onprem.free_gpus = 0
    await fed.run_once(120.0)
    cloud.set_state(job.uid, CopyState.PREEMPTED)
    await fed.run_once(130.0)
    assert job.record is not None
    assert (job.record.attempt, job.record.phase, job.record.losses) == (2, Phase.REQUEUED, 1)
    await fed.run_once(300.0)  # past the backoff
    assert job.record is not None, "sent home with one lost copy"
    assert (job.record.attempt, job.record.phase) == (3, Phase.PLACED)


def test_a_requeue_keeps_the_count_of_a_record_written_before_it_was_kept() -> None:
    """A record written before `lost` existed (None) counts its earlier attempts as lost. A
    pull-back or a placement dropped on a draining cloud requeues it with no new loss, so its
    count must stay what it was; only a loss (`Moves._lost_attempt`) adds one."""
    placed = PlacementRecord("cloud-a", "spot", 2, Phase.PLACED, placed_at=10.0, gpus=8)
    assert (placed.lost, placed.losses) == (None, 1)
    again = placed.requeue(now=50.0, backoff_s=0.0, stale_copy=None)
    assert (again.phase, again.lost, again.losses) == (Phase.REQUEUED, 1, 1)


async def test_an_older_record_pulled_back_loses_nothing() -> None:
    """The same through the loop: a job placed by an older federator (its record without a
    count), pulled back because on-prem has room, keeps the one loss its attempt 2 implies."""
    onprem, cloud = FakeOnPrem(free_gpus=0), FakeCloud("cloud-a")
    job = onprem.add("j1", 8)
    fed = federation(onprem, [cloud], [offer("cloud-a")], Scripted(), max_replacements=3)
    await fed.run_once(100.0)
    assert job.record is not None
    job.record = PlacementRecord(
        "cloud-a", job.record.pool, 2, Phase.PLACED, placed_at=100.0, gpus=8
    )
    cloud.copies.clear()
    await fed.run_once(105.0)  # recreated as attempt 2, as the record says
    onprem.free_gpus = 8
    await fed.run_once(110.0)
    assert job.record is None, "pulled back"
    assert job.returned_record is not None
    assert job.returned_record.losses == 1
