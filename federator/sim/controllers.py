"""What a controller is to the event loop: the `Controller` protocol and the `Order` it gives.

The loop (`federator.sim.engine.Simulation`) asks a controller about the queued jobs that
need a decision and carries out its orders; the decision core's adapter
(`federator.sim.policies`) and the hindsight oracle (`federator.sim.oracle`) implement it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from federator.sim.cloud import CloudPool
from federator.sim.world import World


# Not frozen, read-only by convention: an oracle run builds over a million, and a frozen
# dataclass's __init__ costs three times as much.
@dataclass(slots=True)
class Order:
    """What a controller wants done with one queued job."""

    job: int
    pool: CloudPool | None = None  # burst there now; None: leave it in the queue
    revisit_at: float | None = None  # when to ask about it again (None: never by itself)
    # When the policy expects the job to start on-prem if it stays (None: it makes no forecast);
    # the first one per job is kept in the outcomes, to be held against the real start.
    expected_start: float | None = None
    # Whether freed cloud room may change the answer, so a job that stayed for want of room is
    # asked again when a cloud job finishes. False: the controller knows its answer stays the
    # same whatever room frees (the oracle's unplanned jobs), and each such ask is wasted work.
    wake_on_room: bool = True


class Controller(Protocol):
    """Decides about queued jobs; the decision core's adapter and the oracle implement it.

    `decide` answers each due job at most once. It may leave out a job that freed cloud room
    woke (`World.woken_by_room`): that job stays as it was before the wake, waiting for room
    with the revisit it had, and is not counted as decided. (At a full cloud each cloud finish
    wakes every job short of room; the oracle leaves out the planned bursts it cannot place.)
    """

    name: str
    knob: float | None

    def prepare(self, world: World) -> None: ...

    def decide(self, world: World, now: float, due: Sequence[int]) -> Sequence[Order]: ...
