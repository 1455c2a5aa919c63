"""The discrete-event loop: arrivals, on-prem admission, decision rounds, completions.

At each event time the order is fixed (and matches the daemon's view of the world):
1. finished jobs give back their GPUs (on-prem) or their cloud capacity;
2. jobs submitted now join the on-prem queue;
3. on-prem admission runs (BestEffortFIFO, `federator.sim.onprem`);
4. if a decision round is due, the controller (the decision core, or the oracle's plan) is
   asked about the queued jobs that need a decision, and bursts are carried out.

A job that was not admitted on arrival needs a decision. Decision rounds happen on a grid of
`decision_period_s` (the daemon's reconcile period), so bursty arrivals share one round. After
a `stay`, the controller names the time it wants to look at the job again; in between the job
costs nothing. Each bursted job's cloud life is computed when it bursts (`federator.sim.cloud`),
so the heap only ever holds completions, revisits and rounds.

A `Simulation` creates what it runs with: the `World` (the state controllers read,
`federator.sim.world`) and the `RoomWaits` (the jobs waiting for cloud room,
`federator.sim.room_waits`); the scenario's rules are in `federator.sim.scenarios`.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable, Sequence

from federator import errors
from federator.sim.cloud import CloudPool, CloudRun, draws_at_random, run_in_cloud
from federator.sim.controllers import Controller, Order
from federator.sim.fits import check_fits
from federator.sim.metrics import JobOutcomes, summarize
from federator.sim.results import RunResult, check_invariants
from federator.sim.room_waits import RoomWaits
from federator.sim.scenarios import Scenario
from federator.sim.traces import TraceJob
from federator.sim.world import World

_DONE = 0  # a running job finished (on-prem or cloud)
_REVISIT = 1  # a queued job's revisit time came
_ROUND = 2  # a decision round is due
_PROGRESS_STEP = 500  # arrivals per progress report
# A job still queued this long after the trace's last submission, with nothing running on-prem
# or in the cloud, can never run: every budget window, cap and replayed input has long since
# reset or ended, so nothing it waits for will change. (Its revisits double, so without this
# the run would spin until the clock overflowed.)
_GIVE_UP_AFTER_S = 400 * 86_400.0


class Simulation:
    """One run of one controller over one trace."""

    def __init__(
        self,
        trace: Sequence[TraceJob],
        scenario: Scenario,
        controller: Controller,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        check_fits(trace, scenario, controller.name)
        self.world = World(trace, scenario)
        self.controller = controller
        self.progress = progress
        self.outcomes = JobOutcomes.empty(len(trace))
        self._heap: list[tuple[float, int, int, int]] = []
        self._seq = 0
        self._round_times: set[float] = set()
        self._due: set[int] = set()
        self._next_revisit: dict[int, float] = {}
        # Per queued job, the time of the heap entry that will bring its `_next_revisit` (at or
        # before it): a job asked again and again at a full cloud moves its revisit later each
        # time, and one entry, pushed on again when it comes early, does for all of them.
        self._revisit_entry: dict[int, float] = {}
        # The queued jobs that stayed short of cloud room, asked again when a cloud finish frees
        # room they may use.
        self.room_waits = RoomWaits(self.world, controller.name)
        self._max_onprem_used = 0
        self._admission_may_change = False  # see `_admit`
        self._queued = self.world.queue.jobs  # live: membership and set operations in C
        self.decision_rounds = 0
        self.decided_jobs = 0

    def run(self) -> RunResult:
        self.controller.prepare(self.world)
        trace, arrivals, heap, queued = self.world.trace, 0, self._heap, self._queued
        # Submission times, then inf once all have arrived (the loop runs ~50,000 times).
        submits = [spec.submit_s for spec in trace] + [math.inf]
        every_event = self.world.scenario.decision_period_s <= 0
        unreported = 0  # arrivals not yet told to `progress` (a bar needs no per-event update)
        self._record_submissions()
        while arrivals < len(trace) or heap:
            now = min(submits[arrivals], heap[0][0] if heap else math.inf)
            round_due = self._pop_events(now)
            first = arrivals
            while submits[arrivals] <= now:
                self._submit(arrivals)
                arrivals += 1
            unreported += arrivals - first
            if self.progress is not None and unreported >= _PROGRESS_STEP:
                self.progress(unreported)
                unreported = 0
            self._admit(now)
            for job in range(first, arrivals):
                if job in queued:
                    self._make_due(job, now)
            if round_due or (every_event and self._due):
                self._decision_round(now)
        if self.progress is not None and unreported:
            self.progress(unreported)
        return self._result()

    # --- events --------------------------------------------------------------------------

    def _push(self, when: float, kind: int, job: int) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (when, kind, self._seq, job))

    def _pop_events(self, now: float) -> bool:
        round_due = False
        while self._heap and self._heap[0][0] <= now:
            _, kind, _, job = heapq.heappop(self._heap)
            if kind == _DONE:
                self._finish(job, now)
            elif kind == _REVISIT:
                self._revisit_came(job, now)
            else:
                self._round_times.discard(now)
                round_due = True
        return round_due

    def _revisit_came(self, job: int, now: float) -> None:
        if self._revisit_entry.get(job) == now:
            del self._revisit_entry[job]
        if job not in self._queued:
            return
        wanted = self._next_revisit.get(job)
        if wanted == now:
            self._make_due(job, now)
        elif wanted is not None and wanted > now and job not in self._revisit_entry:
            self._revisit_entry[job] = wanted  # moved later since this entry was pushed
            self._push(wanted, _REVISIT, job)

    def _revisit_at(self, job: int, at: float) -> None:
        self._next_revisit[job] = at
        entry = self._revisit_entry.get(job)
        if entry is None or at < entry:
            self._revisit_entry[job] = at
            self._push(at, _REVISIT, job)

    def _make_due(self, job: int, now: float) -> None:
        self._due.add(job)
        self._round_for(now)

    def _round_for(self, now: float) -> None:
        """Schedule the decision round that takes the jobs due at `now` (the next on the grid)."""
        period = self.world.scenario.decision_period_s
        if period <= 0:
            return
        at = math.ceil(now / period) * period
        if at not in self._round_times:
            self._round_times.add(at)
            self._push(at, _ROUND, -1)

    # --- on-prem -------------------------------------------------------------------------

    def _submit(self, job: int) -> None:
        self.world.estimate_at_submission(job)
        self.world.queue.push(job, job, self.world.trace[job].gpus)
        self._admission_may_change = True

    def _admit(self, now: float) -> None:
        # A scan admits until nothing queued fits; only an arrival or GPUs given back can change
        # that (a burst only takes a job out of the queue), so other events skip the scan.
        if not self._admission_may_change:
            return
        self._admission_may_change = False
        world = self.world
        for job, placement in world.queue.admit(world.nodes):
            world.placements[job] = placement
            spec = world.trace[job]
            self.outcomes.start_s[job] = now
            world.start_running(job, now)
            self._due.discard(job)
            self._push(now + spec.duration_s, _DONE, job)
        used = world.nodes.total_gpus - world.nodes.free_gpus
        self._max_onprem_used = max(self._max_onprem_used, used)

    def _finish(self, job: int, now: float) -> None:
        world = self.world
        self.outcomes.end_s[job] = now
        self.outcomes.finished_count[job] += 1
        world.estimator.observe_finished(world.trace[job])
        if job in world.placements:
            world.nodes.release(world.placements.pop(job))
            world.stop_running(job)
            self._admission_may_change = True
        else:
            pool, gpus = world.cloud_running.pop(job)
            waits = self.room_waits
            rooms_before = waits.rooms_before_a_finish(now)
            world.pool_used_gpus[pool.name] -= gpus
            world.pool_jobs[pool.name] -= 1
            self._ask_again(waits.wake(waits.pools_freed_by(pool, rooms_before, now)), now)

    def _ask_again(self, woken: set[int], now: float) -> None:
        """The jobs freed cloud room woke are due (`World.woken_by_room` says why)."""
        self.world.woken_by_room.update(woken)
        if woken:  # they share one round
            self._due.update(woken)
            self._round_for(now)

    # --- decisions -----------------------------------------------------------------------

    def _decision_round(self, now: float) -> None:
        queued = self._queued
        due_jobs = self._due & queued
        self._due.clear()
        if not due_jobs:
            self.world.woken_by_room.clear()
            return
        self.decision_rounds += 1
        due = sorted(due_jobs)  # queue order: jobs are numbered in submission order
        orders = self.controller.decide(self.world, now, due)
        left_out = self._keep_left_out(due_jobs, orders) if len(orders) < len(due) else 0
        self.world.woken_by_room.clear()
        self.decided_jobs += len(due) - left_out
        stayed: list[Order] = []
        for order in orders:
            if order.job not in queued:
                continue
            if order.pool is not None:
                self._burst(order.job, order.pool, now)
            else:
                stayed.append(order)
        # After the round's bursts: what room is left is what the jobs that stayed saw.
        wakeable = any(order.wake_on_room for order in stayed)
        rooms = self.world.cloud_room_gpus(now) if wakeable and self.world.scenario.pools else {}
        shapes: dict[tuple[int, str, str], float | None] = {}  # see `RoomWaits.returns`
        waits = self.room_waits
        short_of_room, shape_of = waits.jobs, waits.shapes
        for order in stayed:  # at a full cloud, a round can hold the whole queue: kept lean
            job = order.job
            if order.expected_start is not None:
                self._note_forecast(order, now)
            revisit = order.revisit_at
            if not order.wake_on_room:
                short_of_room.discard(job)
            elif rooms:
                shape = shape_of[job]
                if shape in shapes:
                    returns = shapes[shape]
                else:
                    returns = shapes[shape] = waits.returns(job, rooms, now)
                if returns is not None:  # short of room: woken when room frees
                    short_of_room.add(job)
                    revisit = returns if revisit is None else min(revisit, returns)
            if revisit is not None and revisit < math.inf:
                self._revisit_at(job, revisit if revisit > now else now)
        if stayed:
            self._give_up_if_stuck(stayed, now)

    def _keep_left_out(self, due: set[int], orders: Sequence[Order]) -> int:
        """Due jobs `decide` left out wait for room again, as before their wake (their revisits
        stand); only jobs freed room woke may be left out. Returns how many were."""
        left_out = due.difference([order.job for order in orders])
        if not self.world.woken_by_room.issuperset(left_out):
            raise AssertionError(f"{self.controller.name} left out a job freed room did not wake")
        self.room_waits.jobs.update(left_out)
        return len(left_out)

    def _give_up_if_stuck(self, stayed: Sequence[Order], now: float) -> None:
        """A clear error for jobs that can never run (see _GIVE_UP_AFTER_S)."""
        world = self.world
        if world.running or world.cloud_running:
            return
        if now - world.trace[-1].submit_s < _GIVE_UP_AFTER_S:
            return
        names = ", ".join(world.trace[order.job].job_id for order in stayed[:5])
        more = f" and {len(stayed) - 5} more" if len(stayed) > 5 else ""
        raise errors.UserError(
            f"job(s) {names}{more} can never run: they do not fit the simulated on-prem "
            f"cluster and the {self.controller.name} policy refuses every cloud option, "
            f"{(now - world.trace[-1].submit_s) / 86_400:.0f} simulated days after the last "
            f"submission with nothing else running (is a budget or cap below what one such job "
            f"needs?)"
        )

    def _note_forecast(self, order: Order, now: float) -> None:
        outcomes, expected = self.outcomes, order.expected_start
        if expected is None or not math.isfinite(expected):
            return
        if math.isnan(outcomes.forecast_start_s[order.job]):  # the first forecast is the one
            outcomes.forecast_at_s[order.job] = now
            outcomes.forecast_start_s[order.job] = expected

    def _burst(self, job: int, pool: CloudPool, now: float) -> None:
        world, spec = self.world, self.world.trace[job]
        if world.pool_used_gpus[pool.name] + spec.gpus > pool.max_gpus:
            raise AssertionError(f"controller over-filled {pool.name}")
        if spec.gpus > pool.largest_launch_gpus:
            raise AssertionError(f"controller bursted {spec.job_id} to {pool.name}, too small ever")
        world.queue.remove(job)
        self._next_revisit.pop(job, None)
        rng = None
        if draws_at_random(pool):
            rng = random.Random(f"{world.scenario.seed}:cloud:{spec.job_id}:{pool.name}")
        run = run_in_cloud(
            pool,
            spec.gpus,
            spec.duration_s,
            now,
            world.scenario.physics,
            world.scenario.dataset_bytes_per_job,
            rng,
            world.scenario.output_bytes_per_job,
        )
        self._record_cloud(job, run, now)
        self.outcomes.pool[job] = world.scenario.pools.index(pool)
        world.pool_used_gpus[pool.name] += spec.gpus
        world.pool_jobs[pool.name] += 1
        world.cloud_running[job] = (pool, spec.gpus)
        self._push(run.end_s, _DONE, job)

    def _record_cloud(self, job: int, run: CloudRun, now: float) -> None:
        outcomes = self.outcomes
        outcomes.bursted[job] = True
        outcomes.start_s[job] = run.start_s
        outcomes.cost_usd[job] = run.cost_usd
        outcomes.data_usd[job] = run.data_usd
        outcomes.cloud_gpu_s[job] = run.gpu_seconds
        outcomes.lost_gpu_s[job] = run.lost_gpu_seconds
        outcomes.preemptions[job] = run.preemptions
        pool_bills = self.world.cloud_usd_by_pool
        pool_bills[run.pool] = pool_bills.get(run.pool, 0.0) + run.cost_usd
        self.world.book_cloud_cost(job, run.cost_usd, now)

    # --- results -------------------------------------------------------------------------

    def _record_submissions(self) -> None:
        for index, spec in enumerate(self.world.trace):
            self.outcomes.submit_s[index] = spec.submit_s
            self.outcomes.duration_s[index] = spec.duration_s
            self.outcomes.gpus[index] = spec.gpus
            if spec.deadline_s is not None:
                self.outcomes.deadline_s[index] = spec.deadline_s

    def _result(self) -> RunResult:
        check_invariants(self.outcomes, self._max_onprem_used, self.world.scenario.onprem_gpus)
        billed = sum(self.world.cloud_usd_by_pool.values())
        if not math.isclose(
            billed, float(self.outcomes.cost_usd.sum()), rel_tol=1e-9, abs_tol=1e-6
        ):
            raise AssertionError(f"pools billed ${billed:.6f}, jobs were charged a different sum")
        controller = self.controller
        return RunResult(
            policy=controller.name,
            knob=controller.knob,
            knob_name=getattr(controller, "knob_name", ""),
            onprem_gpus=self.world.scenario.onprem_gpus,
            estimate=self.world.scenario.estimate.label(),
            seed=self.world.scenario.seed,
            outcomes=self.outcomes,
            summary=summarize(self.outcomes, self.world.scenario.onprem_gpus),
            decision_rounds=self.decision_rounds,
            decided_jobs=self.decided_jobs,
            max_onprem_gpus_used=self._max_onprem_used,
            cloud_usd_by_pool=dict(self.world.cloud_usd_by_pool),
        )
