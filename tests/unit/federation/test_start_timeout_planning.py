"""Pure planning of `burst.replacement.start_timeout`: which Pending copies have waited too long.

Before, `_step` mirrored a Pending copy for ever: a copy on a pool whose capacity never came
stayed Pending until on-prem freed up (pull-back) or a person stepped in."""

from __future__ import annotations

import pytest

from federator.core.models import OnPremState, PendingJob
from federator.federation import planning
from federator.federation.planning import StepKind
from federator.federation.ports import CloudView, CopyState, CopyView, OnPremJob, OnPremView
from federator.federation.records import Phase, PlacementRecord

NOW = 10_000.0
TIMEOUT_S = 900.0


def placed_job() -> OnPremJob:
    record = PlacementRecord("cloud-a", "a100-spot", 1, Phase.PLACED, placed_at=0.0, gpus=8)
    return OnPremJob(
        key="team-a/train",
        namespace="team-a",
        name="train",
        uid="u1",
        resource_version="7",
        gpus=8,
        record=record,
        spec=PendingJob(key="team-a/train", gpus=8, submitted_at=0.0, runtime_estimate_s=60.0),
    )


def step_for(state: CopyState, pending_since: float | None, start_s: float | None) -> planning.Step:
    job = placed_job()
    copy = CopyView(
        "cloud-a", "team-a", "train-u1-1", "u1", 1, "a100-spot", state, pending_since=pending_since
    )
    onprem = OnPremView(up=True, synced=True, state=OnPremState(16, 0), jobs=(job,))
    clouds = {"cloud-a": CloudView("cloud-a", up=True, synced=True, copies=(copy,))}
    timeouts = planning.Timeouts({}, start_s=start_s)
    (step,) = planning.converge(onprem, clouds, timeouts, now=NOW)
    return step


@pytest.mark.parametrize(
    ("state", "waited_s", "start_s", "kind"),
    [
        (CopyState.PENDING, 900.0, 900.0, StepKind.NOT_STARTED),  # at the timeout
        (CopyState.PENDING, 5000.0, 900.0, StepKind.NOT_STARTED),
        (CopyState.PENDING, 899.0, 900.0, StepKind.MIRROR),  # under it: left alone
        (CopyState.PENDING, None, 900.0, StepKind.MIRROR),  # resumed, unseen by the controller
        (CopyState.PENDING, 5000.0, None, StepKind.MIRROR),  # start_timeout: null
        (CopyState.SUSPENDED, 5000.0, 900.0, StepKind.RESUME),  # waits for its data, not capacity
        (CopyState.RUNNING, 5000.0, 900.0, StepKind.MIRROR),
        (CopyState.PREEMPTED, 5000.0, 900.0, StepKind.PREEMPTED),
    ],
)  # fmt: skip
def test_only_a_pending_copy_past_the_start_timeout_is_re_placed(
    state: CopyState, waited_s: float | None, start_s: float | None, kind: StepKind
) -> None:
    since = None if waited_s is None else NOW - waited_s
    assert step_for(state, since, start_s).kind is kind


@pytest.mark.parametrize(("start_s", "said"), [(900.0, "15m"), (30.0, "30s"), (90.0, "90s")])
def test_the_reason_names_the_pool_and_the_wait(start_s: float, said: str) -> None:
    step = step_for(CopyState.PENDING, NOW - 5000.0, start_s)
    assert step.reason == f"no pod of the copy started within {said} on cloud-a/a100-spot"
    assert step.copy is not None
    assert step.copy.name == "train-u1-1"
