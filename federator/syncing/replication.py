"""Keeping datasets replicated to the clouds, as the federation loop needs it: an async API.

The federation loop asks `ensure_replicated(dataset, cluster)` for every dataset of a job it
placed (or is about to place) in the cloud. The answer says whether the replica is complete
(the job may start), or how many bytes are still to copy (the job stays suspended, and the cost
model prices the wait). The first call that finds work starts one background copy for that
(dataset, cluster), from the plan that call's listing just made (the run does not list the
dataset again); later calls report its progress. Work is also deletes that are due and a
delete hold-back clock to save (only a run does either); such a run holds no job back. Copies
are blocking boto3 work and run in threads through `asyncio.to_thread`, never on the event
loop.

A check waits for the listing of both sides at most `CHECK_WAIT_S` (5 s): a store that does not
answer would otherwise hold the federation's decision pass, which asks in line, for the store
client's whole retry budget. A listing still out then goes on in the background, and a later
call picks up its result; meanwhile a replica last answered READY (a complete one being
rechecked) keeps that answer, and any other is CHECKING (not ready, bytes unknown).

A copy or a listing that fails backs the replica off: until its `retry_at` (30 s after the
first failure, doubled per failure in a row, at most 10 min) every call answers the failed
status without listing, so a store that is down or refuses us is not sent a full listing of
the dataset on every decision pass for as long as the fault lasts. A success resets it.

It also measures each replica's lag (RPO): the age of the oldest source change not yet at the
cloud, or, for a replica found complete, the time since that was checked. `publish_metrics`
turns it into `federator_sync_lag_seconds{dataset,cluster}`; copied bytes are counted in
`federator_sync_bytes_total{direction="to_cloud"}` as they are sent, and failed tries (each
one backed off) in `federator_sync_failures_total{dataset,cluster}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

import structlog
from tenacity import RetryCallState, Retrying, wait_exponential, wait_random

from federator import metrics
from federator.errors import FederatorError
from federator.syncing.plans import SyncPlan, SyncReport


class CopyEngine(Protocol):
    """The port to the copy engine (`federator.storage.copying.DatasetCopier`)."""

    def plan(self) -> tuple[SyncPlan, float]: ...

    def run(
        self,
        *,
        dry_run: bool = False,
        planned: tuple[SyncPlan, float] | None = None,  # its last `plan()`: not listed again
        on_plan: Callable[[SyncPlan], None] | None = None,
        on_bytes: Callable[[int], None] | None = None,
        on_object: Callable[[str], None] | None = None,
    ) -> SyncReport: ...

    def stop(self) -> None: ...


CopierFactory = Callable[[str, str], CopyEngine]  # (dataset, cluster) -> engine

RetryWait = Callable[[RetryCallState], float]  # a tenacity wait strategy

# The wait after a failed copy or listing: 30 s doubled per failure in a row, at most 10 min
# (the figures of a failed placement's re-placement, `bursting.replacement`), plus up to 10 s
# of jitter so that the replicas of one store that failed together are not all listed again
# in the same decision pass. Fixed here: no policy key sets it.
RETRY_WAIT: RetryWait = wait_exponential(multiplier=30, max=600) + wait_random(0, 10)

# How long a check waits for its listing before answering CHECKING. The federation asks in its
# decision pass, one replica after another, so every second waited here delays every other
# job's decision; a store that does not answer is retried for 90 s (`storage.retrying`). A
# healthy listing of a few thousand objects answers well within 5 s (one request per 1,000
# keys, both sides in parallel); a larger one answers to a later call (a no-op re-sync of
# 100,000 objects, listings only, took 24-34 s: docs/benchmarks.md, Sync (c)). Fixed here: no
# policy key sets it.
CHECK_WAIT_S = 5.0

log = structlog.get_logger(__name__)


class ReplicaState(StrEnum):
    REPLICATED = "replicated"  # every source object is at the cloud, verified
    COPYING = "copying"  # a copy is running; see bytes_remaining
    FAILED = "failed"  # the last copy or listing failed; a call after retry_at tries again
    CHECKING = "checking"  # a listing outlasted CHECK_WAIT_S; a later call picks up its answer


@dataclass(frozen=True, slots=True)
class ReplicationStatus:
    dataset: str
    cluster: str
    state: ReplicaState
    bytes_remaining: int | None  # None: unknown (never listed, or CHECKING); never read it as 0
    objects_remaining: int | None
    checked_at: float  # epoch seconds of the listing this status rests on
    oldest_pending_at: float | None  # when the oldest change not yet copied happened
    message: str = ""
    retry_at: float | None = None  # after a failure: epoch seconds before which nothing is tried

    @property
    def ready(self) -> bool:
        return self.state is ReplicaState.REPLICATED

    def lag_s(self, now: float) -> float:
        since = self.checked_at
        if self.oldest_pending_at is not None:
            since = min(since, self.oldest_pending_at)
        return max(0.0, now - since)


class _Copy:
    """One running copy: its task and the bytes it has sent so far (updated from threads)."""

    def __init__(self, plan: SyncPlan, listed_at: float) -> None:
        self.plan = plan
        self.listed_at = listed_at
        self.sent = 0
        self.objects_done = 0
        self.lock = threading.Lock()
        self.task: asyncio.Task[SyncReport] | None = None
        self.outcome: ReplicationStatus | None = None  # the status it ended with
        self.forgotten = False  # a reload changed the replica's definition while it ran

    def add_bytes(self, count: int) -> None:
        with self.lock:
            self.sent += count
        metrics.SYNC_BYTES.labels(direction="to_cloud").inc(count)

    def add_object(self, _key: str) -> None:
        with self.lock:
            self.objects_done += 1


@dataclass
class _Check:
    """One listing of a replica's two sides, awaited by the call that started it for at most
    `check_wait_s`, then left to finish in the background."""

    engine: CopyEngine
    task: asyncio.Task[tuple[SyncPlan, float]]
    started_at: float
    overdue: bool = False  # answered CHECKING: no longer awaited by the call that started it


@dataclass(frozen=True, slots=True)
class _Backoff:
    """A replica whose last copy or listing failed: the answer until `status.retry_at`."""

    failures: int  # in a row, since the last success
    status: ReplicationStatus


class Replicator:
    """Dataset replicas to cloud clusters: check, copy in the background, report."""

    def __init__(
        self,
        copiers: CopierFactory,
        *,
        recheck_after_s: float = 60.0,
        clock: Callable[[], float] = time.time,
        retry_wait: RetryWait = RETRY_WAIT,
        check_wait_s: float = CHECK_WAIT_S,
    ) -> None:
        self._copiers = copiers
        self._engines: dict[tuple[str, str], CopyEngine] = {}
        self._outdated: set[tuple[str, str]] = set()  # engines built for old locations
        self._recheck_after_s = recheck_after_s
        self._clock = clock
        self._retry_wait = retry_wait
        self._check_wait_s = check_wait_s
        self._checks: dict[tuple[str, str], _Check] = {}  # one listing at a time per replica
        self._copies: dict[tuple[str, str], _Copy] = {}
        self._status: dict[tuple[str, str], ReplicationStatus] = {}  # as of the last listing
        self._backoffs: dict[tuple[str, str], _Backoff] = {}
        # Replicas in use that a reload moved: not checked at their new location yet.
        self._moved: set[tuple[str, str]] = set()
        self._closing = False  # copies ending now were stopped for a shutdown

    async def ensure_replicated(self, dataset: str, cluster: str) -> ReplicationStatus:
        """Where the replica stands; starts a background copy when it is behind.

        A replica found complete is trusted for `recheck_after_s` before it is listed again;
        one whose copy or listing failed answers that failure until its `retry_at`. The call
        that starts a listing waits for it at most `check_wait_s` (a recheck of a replica last
        answered READY: not at all); while a listing is out after that, a replica last
        answered READY keeps that status, any other is CHECKING (not ready).
        """
        key = (dataset, cluster)
        self._moved.discard(key)
        check = self._checks.get(key)
        if check is not None:  # started by an earlier call: answered at once, never waited for
            return await self._outcome(key, check, wait_s=0.0)
        remembered = self._remembered(key)
        if remembered is not None:
            return remembered
        return await self._outcome(key, self._start_check(key), wait_s=self._wait_for(key))

    async def sync_now(self, dataset: str, cluster: str) -> ReplicationStatus:
        """Copy until the replica is complete (or the copy fails), then report.

        It waits for a listing that outlasted `ensure_replicated`'s wait, however long it
        takes, and honours the backoff of a failed replica, as `ensure_replicated` does. Its
        caller is the daemon's re-sync loop (the `federator sync` CLI copies without a
        Replicator), which asks `ensure_replicated` for the same replica just before: a failure
        that call met would otherwise be retried at once, a second full listing for the same
        fault. The loop's `sync.interval` may also be short (30 s in config/sandbox.yaml). A
        replica in backoff is still tried at least every 10 min, and by the first call after
        `retry_at`. A copy it waits for answers with its own outcome, also when a reload
        (`forget`) changed the replica meanwhile; the message then says it was the old location.
        """
        key = (dataset, cluster)
        status = await self.ensure_replicated(dataset, cluster)
        while (check := self._checks.get(key)) is not None and not self._closing:
            status = await self._outcome(key, check, wait_s=None)
        running = self._copies.get(key)
        if running is not None and running.task is not None:
            await asyncio.wait({running.task})
            # Its own outcome, not the replica's status now: a reload (`forget`) may have
            # dropped that meanwhile, and the copy's result is what this call waited for.
            return _outcome_of(running)
        return status

    def bytes_remaining(self, dataset: str, cluster: str) -> int | None:
        """Bytes still to copy for the cost model; None before the replica was first listed,
        and while a listing that outlasted its wait is out (CHECKING: the replica may have
        changed since the last listing, or its store may be down)."""
        key = (dataset, cluster)
        check = self._checks.get(key)
        if check is not None and check.overdue:
            return None
        running = self._copies.get(key)
        if running is not None:
            return self._progress(key, running).bytes_remaining
        known = self._status.get(key)
        return None if known is None else known.bytes_remaining

    def lags(self) -> dict[tuple[str, str], float]:
        """Lag in seconds of every replica checked so far, keyed by (dataset, cluster)."""
        now = self._clock()
        return {key: status.lag_s(now) for key, status in self._status.items()}

    def in_use(self) -> set[tuple[str, str]]:
        """Replicas this process has checked, and those it had checked before a reload moved
        them: the re-sync loop fills a moved replica's new location ahead of the next job, as
        it kept the old one fresh (a replica never checked is found by its objects instead)."""
        return set(self._status) | set(self._checks) | set(self._copies) | self._moved

    def publish_metrics(self) -> None:
        for (dataset, cluster), lag in self.lags().items():
            metrics.SYNC_LAG_SECONDS.labels(dataset=dataset, cluster=cluster).set(lag)

    def forget(self, dataset: str, cluster: str) -> None:
        """The replica's definition changed (a policy reload moved it, or removed it): what
        was learnt of it is dropped and its next check lists it again with an engine built
        anew. A copy running now finishes with the engine it started with (`aclose` still
        stops it); its result is dropped as it ends. A listing out now is dropped at once and
        its engine stopped, so its thread fetches no further page and retries no failed one
        (no copy runs on that engine: a check and a copy of one replica never overlap)."""
        key = (dataset, cluster)
        if key in self.in_use():
            # Filled at its new location by the next re-sync round (a replica the reload removed
            # instead is never asked for again, so its key here is inert).
            self._moved.add(key)
        self._outdated.add(key)
        check = self._checks.pop(key, None)
        if check is not None:  # listing the old location: its answer is not the new one's
            check.task.cancel()
            check.engine.stop()  # outdated: the next check builds a new one
        running = self._copies.get(key)
        if running is not None and running.task is not None:
            running.forgotten = True
            # Done callbacks run in the order they were added (even on a task done already
            # whose `_finish` has not run yet): this one after `_finish`.
            running.task.add_done_callback(lambda _: self._drop_status(key))
        else:
            self._drop_status(key)

    def _drop_status(self, key: tuple[str, str]) -> None:
        self._status.pop(key, None)
        self._backoffs.pop(key, None)  # the failure was the old definition's
        with contextlib.suppress(KeyError):  # its lag is unknown now, not the old value
            metrics.SYNC_LAG_SECONDS.remove(*key)

    async def aclose(self) -> None:
        """Stop running copies and wait for them: each finishes only its requests in flight
        (threads cannot be interrupted mid-request) and leaves its open multipart uploads
        recorded for the next start to resume, so a shutdown is not held up by a whole copy
        (SIGTERM must end the daemon within 25 s). Listings still out are dropped, not waited
        for: nothing is decided from their answer any more. Stopping their engines ends their
        threads too, at the next page or retry, instead of after a store's whole retry budget
        (90 s), which the process would wait for at exit."""
        self._closing = True
        for engine in self._engines.values():
            engine.stop()
        checks = [c.task for c in self._checks.values()]
        self._checks.clear()
        for check in checks:
            check.cancel()
        tasks = [c.task for c in self._copies.values() if c.task is not None]
        if tasks or checks:
            await asyncio.wait([*tasks, *checks])

    # -- internals ---------------------------------------------------------------------------

    def _remembered(self, key: tuple[str, str]) -> ReplicationStatus | None:
        """The answer that needs no listing: a copy's progress, a backoff, a fresh complete
        replica; None when the replica must be listed."""
        running = self._copies.get(key)
        if running is not None:
            return self._progress(key, running)
        backoff = self._backoffs.get(key)
        if backoff is not None and self._clock() < (backoff.status.retry_at or 0.0):
            return backoff.status
        known = self._status.get(key)
        fresh = known is not None and self._clock() - known.checked_at < self._recheck_after_s
        if known is not None and known.ready and fresh:
            return known
        return None

    def _start_check(self, key: tuple[str, str]) -> _Check:
        engine = self._engine(key)
        task = asyncio.get_running_loop().create_task(
            asyncio.to_thread(engine.plan), name=f"sync-check:{key[0]}->{key[1]}"
        )
        # A listing that fails while nobody waits is picked up by a later call, or dropped;
        # asyncio must not log it as an exception never retrieved.
        task.add_done_callback(lambda done: done.cancelled() or done.exception())
        check = _Check(engine, task, started_at=self._clock())
        self._checks[key] = check
        return check

    async def _outcome(
        self, key: tuple[str, str], check: _Check, *, wait_s: float | None
    ) -> ReplicationStatus:
        """The check's answer, waiting for it at most `wait_s` (None: until it answers); a
        CHECKING status if it has not answered by then."""
        # An answer that comes while this call waits was made moments ago: the copy it calls
        # for may run from it. One that came earlier may be old; that copy lists again.
        fresh = not check.task.done()
        if wait_s is None or wait_s > 0:
            await asyncio.wait({check.task}, timeout=wait_s)
        if self._checks.get(key) is not check:
            # Another caller picked the answer up meanwhile, or `forget`/`aclose` dropped it.
            if self._closing:
                return self._checking(key, check)
            return await self.ensure_replicated(*key)
        if not check.task.done():
            return self._checking(key, check)
        del self._checks[key]
        return self._settle(key, check.engine, check.task, fresh=fresh)

    def _settle(
        self,
        key: tuple[str, str],
        engine: CopyEngine,
        listing: asyncio.Task[tuple[SyncPlan, float]],
        *,
        fresh: bool,
    ) -> ReplicationStatus:
        """The status a listing's answer gives; starts the copy it calls for, from the
        listing's own plan when it is `fresh` (else the copy lists again)."""
        try:
            plan, listed_at = listing.result()
        except FederatorError as error:  # a store down or refusing us (anything else: a bug)
            return self._failed(key, str(error), self._listing_failed(key))
        # A run also applies the deletes due and saves the hold-back clock; only a run does
        # either, so one starts for them too, while a replica with nothing to copy is ready.
        if plan.needs_run:
            self._start_copy(key, engine, plan, listed_at, reuse_plan=fresh)
        else:
            self._backoffs.pop(key, None)  # found complete: a success
        return self._remember(_status(key, plan, listed_at, _state_of(plan)))

    def _checking(self, key: tuple[str, str], check: _Check) -> ReplicationStatus:
        """A listing still out. A replica whose last answer was READY keeps it (its lag
        growing) until the recheck answers: a complete replica is listed again every
        `recheck_after_s`, and a large one lists for longer than a check waits (100,000
        objects: 24-34 s), so its jobs were held for a pass every minute. Any other is not
        ready, and how much is left is unknown (never 0, which would tell the federation the
        replica is there). Not remembered as a listing's."""
        last = self._last_answer(key)
        if last is not None and last.ready:
            return last
        check.overdue = True
        known = self._status.get(key)
        return ReplicationStatus(
            dataset=key[0],
            cluster=key[1],
            state=ReplicaState.CHECKING,
            bytes_remaining=None,
            objects_remaining=None,
            checked_at=known.checked_at if known is not None else check.started_at,
            oldest_pending_at=known.oldest_pending_at if known is not None else None,
            message=(
                f"listing the dataset and its replica since {_utc_time(check.started_at)} UTC "
                "(the store answers slowly or not at all); a later check picks up the answer"
            ),
        )

    def _wait_for(self, key: tuple[str, str]) -> float:
        """How long the call that starts a listing waits for it: not at all for a recheck of a
        replica last answered READY, which keeps that answer until the recheck answers (see
        `_checking`); waiting would hold the decision pass up to `check_wait_s` per complete
        replica every `recheck_after_s`, for an answer it does not need."""
        last = self._last_answer(key)
        return 0.0 if last is not None and last.ready else self._check_wait_s

    def _last_answer(self, key: tuple[str, str]) -> ReplicationStatus | None:
        """What the replica was last answered as, from its last listing or copy: a failure
        (backed off) over the listing before it."""
        backoff = self._backoffs.get(key)
        return backoff.status if backoff is not None else self._status.get(key)

    def _engine(self, key: tuple[str, str]) -> CopyEngine:
        # Called only while no copy or listing of `key` runs, so an outdated engine is never
        # replaced under its own copy (which `aclose` must still be able to stop).
        if key not in self._engines or key in self._outdated:
            self._engines[key] = self._copiers(*key)
            self._outdated.discard(key)
        return self._engines[key]

    def _start_copy(
        self,
        key: tuple[str, str],
        engine: CopyEngine,
        plan: SyncPlan,
        listed_at: float,
        *,
        reuse_plan: bool,
    ) -> None:
        copy = _Copy(plan, listed_at)
        self._copies[key] = copy
        # The check's plan saves the run a second full listing of both sides (seconds of
        # requests for 100,000 objects); an older one would copy and delete by a stale listing.
        planned = (plan, listed_at) if reuse_plan else None

        def work() -> SyncReport:
            return engine.run(planned=planned, on_bytes=copy.add_bytes, on_object=copy.add_object)

        copy.task = asyncio.get_running_loop().create_task(
            asyncio.to_thread(work), name=f"sync:{key[0]}->{key[1]}"
        )
        copy.task.add_done_callback(lambda task: self._finish(key, task))

    def _finish(self, key: tuple[str, str], task: asyncio.Task[SyncReport]) -> None:
        copy = self._copies.pop(key)
        copy.outcome = self._remember(self._ended(key, copy, task))

    def _ended(
        self, key: tuple[str, str], copy: _Copy, task: asyncio.Task[SyncReport]
    ) -> ReplicationStatus:
        """The status a copy ended with; a failure is backed off (`_failed`)."""
        progress = self._progress(key, copy)
        if task.cancelled():
            error = "the copy was cancelled"
        elif task.exception() is not None:
            error = f"{type(task.exception()).__name__}: {task.exception()}"
        else:
            report = task.result()
            if report.ok:
                # The copy made the target equal to the listing it planned from.
                done = _status(key, report.plan, report.listed_at, ReplicaState.REPLICATED)
                self._backoffs.pop(key, None)
                return replace(done, bytes_remaining=0, objects_remaining=0, oldest_pending_at=None)
            first_key, first_error = report.failures[0]
            error = f"{len(report.failures)} object(s) failed, first {first_key}: {first_error}"
        # A run that had nothing to copy (deletes, the hold-back clock) leaves every source
        # object in place: the replica stays ready, the failure is told, a later check retries.
        state = ReplicaState.FAILED if copy.plan.copies else ReplicaState.REPLICATED
        if self._closing:  # stopped by `aclose`: no fault to log or back off from
            return replace(progress, state=state, message=error)
        return self._failed(key, error, replace(progress, state=state))

    def _listing_failed(self, key: tuple[str, str]) -> ReplicationStatus:
        """The status of a replica whose listing failed: what the last listing found, if any
        did, but FAILED; never a ready replica on a listing that did not answer. Its figures
        are not remembered as a listing's: `bytes_remaining` stays None for a replica never
        listed (here too, not only in `bytes_remaining()`), since 0 would tell the federation
        loop that it is there."""
        known = self._status.get(key)
        if known is not None:
            return replace(known, state=ReplicaState.FAILED)
        return ReplicationStatus(
            dataset=key[0],
            cluster=key[1],
            state=ReplicaState.FAILED,
            bytes_remaining=None,
            objects_remaining=None,
            checked_at=self._clock(),
            oldest_pending_at=None,
        )

    def _failed(
        self, key: tuple[str, str], error: str, status: ReplicationStatus
    ) -> ReplicationStatus:
        """Back the replica off: the next try waits longer after each failure in a row.

        Logged and counted (`federator_sync_failures_total`) here, once per failure: the
        federation loop sees only whether a job's data is ready, and the backoff answers later
        calls without meeting the fault again."""
        failures = self._backoffs[key].failures + 1 if key in self._backoffs else 1
        wait_s = backoff_s(self._retry_wait, failures)
        retry_at = self._clock() + wait_s
        in_a_row = f"{failures} failure{'s' if failures > 1 else ''} in a row"
        failed = replace(
            status,
            message=f"{error} ({in_a_row}; next try after {_utc_time(retry_at)} UTC)",
            retry_at=retry_at,
        )
        self._backoffs[key] = _Backoff(failures, failed)
        metrics.SYNC_FAILURES.labels(dataset=key[0], cluster=key[1]).inc()
        log.warning(
            "replica_copy_failed",
            dataset=key[0],
            cluster=key[1],
            error=error,
            failures=failures,
            retry_in_s=round(wait_s),
        )
        return failed

    def _progress(self, key: tuple[str, str], copy: _Copy) -> ReplicationStatus:
        with copy.lock:
            sent, done = copy.sent, copy.objects_done
        base = _status(key, copy.plan, copy.listed_at, _state_of(copy.plan))
        return replace(
            base,
            bytes_remaining=max(0, copy.plan.bytes_to_copy - sent),
            objects_remaining=max(0, len(copy.plan.copies) - done),
        )

    def _remember(self, status: ReplicationStatus) -> ReplicationStatus:
        self._status[(status.dataset, status.cluster)] = status
        return status


def backoff_s(wait: RetryWait, failures: int) -> float:
    """The wait after `failures` failures in a row, asked of a tenacity wait strategy.

    tenacity's strategies read the state of a retry loop; here there is none (the tries are
    calls far apart, answered from memory in between), so a state is made up for them."""
    state = RetryCallState(Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = failures
    return float(wait(state))


def _outcome_of(copy: _Copy) -> ReplicationStatus:
    """What a copy that has ended achieved, for the caller that waited for it; if a reload
    changed the replica's definition meanwhile, the status says that it was the old one's."""
    assert copy.outcome is not None, "set by `_finish`, the task's first done callback"
    if not copy.forgotten:
        return copy.outcome
    note = (
        "copied to the replica's location before a policy reload changed it; "
        "the new location is checked at its next use"
    )
    message = f"{copy.outcome.message}; {note}" if copy.outcome.message else note
    return replace(copy.outcome, message=message)


def _utc_time(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%H:%M:%S")


def _state_of(plan: SyncPlan) -> ReplicaState:
    """A replica is behind while it lacks source objects; deletes or a clock do not gate jobs."""
    return ReplicaState.COPYING if plan.copies else ReplicaState.REPLICATED


def _status(
    key: tuple[str, str], plan: SyncPlan, listed_at: float, state: ReplicaState
) -> ReplicationStatus:
    return ReplicationStatus(
        dataset=key[0],
        cluster=key[1],
        state=state,
        bytes_remaining=plan.bytes_to_copy,
        objects_remaining=len(plan.copies),
        checked_at=listed_at,
        oldest_pending_at=plan.oldest_pending_at,
    )
