"""Leader election on a `coordination.k8s.io` Lease, with a fence that stops writes in time.

Only the leader acts; followers keep observing so their caches are warm when they take over.
kubernetes-asyncio's `LeaderElection` does the Lease protocol; what it does not do is fencing:
its leading task is cancelled only after `renew_deadline` of failed renewals, and a write
already in flight could still land afterwards. So every write path asks `Fence.allows_writes()`
first, and the fence closes by itself when the last successful renewal is older than
`renew_deadline` — measured on this process's monotonic clock, so it needs no API call to close.

Safety margin: a renewal counts from when its request *started* (the apiserver commits it
later, never earlier), and another replica can take the lease only `lease_duration` after it
saw that commit. So no write is sent later than `renew_deadline` after that start, and none is
waited for past `lease_duration` after it: while the campaign runs, every write a cluster sends
gets the time the lease has left as its timeout (`Fence.write_window`, through
`clients.writes_within`) when that is shorter than the usual request timeout (20 s). The policy
requires `lease_duration > renew_deadline + retry_period`, so a write sent just before the
fence closes still has more than `retry_period` (the lease requests' own timeout, at least 1 s).
Our last write has been answered or given up before anyone else may start. What a client
cannot do is recall a request the apiserver already holds: that one may still commit until the
apiserver's own timeout; the placement record and the on-prem hold are written conditioned on
a resourceVersion for that reason (`federator.kube.onprem`).

The apiserver being down is normal weather, not a crash: a refused connection or a request
that times out is a failed call to the library (it retries after `retry_period` and, while
leading, keeps the lease until `renew_deadline`), never an exception that ends the round.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import aiohttp
import structlog
from kubernetes_asyncio import client
from kubernetes_asyncio.client.rest import ApiException
from kubernetes_asyncio.leaderelection import electionconfig, leaderelection
from kubernetes_asyncio.leaderelection.resourcelock.leaselock import LeaseLock

from federator.kube import clients

log = structlog.get_logger(__name__)

RELEASE_TIMEOUT_S = 3.0
"""Releasing the lease is a courtesy to the follower; shutdown must finish within 25 s."""

REFUSAL_REPEAT_S = 300.0
"""A Lease create refused the same way again is logged at most this often (it is retried every
`retry_period`, 2 s by default: a missing namespace was 30 identical errors a minute)."""

_REFUSAL_HINTS = {
    404: "the namespace {namespace} does not exist: create it (deploy/base/namespace.yaml "
    "does), or point the policy's state_namespace at one that does",
    403: "this identity may not create Leases in {namespace}: grant it (deploy/base/rbac.yaml)",
}
_DEFAULT_REFUSAL_HINT = "the lease namespace must exist and the identity may create Leases"

# What "the apiserver did not answer" looks like: refused, reset, DNS, TLS, or too slow.
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientError, OSError, TimeoutError)


class NotLeader(Exception):
    """A write was attempted while this replica may not write."""


class Fence:
    """Whether this replica may write right now; closes by itself when renewals stop."""

    def __init__(
        self,
        renew_deadline_s: float,
        *,
        always_open: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._deadline = renew_deadline_s
        self._always_open = always_open
        self._clock = clock
        self._leading = always_open
        self._last_renewal = clock() if always_open else float("-inf")
        self._known = always_open
        self._reported_closed = False

    @property
    def leadership_known(self) -> bool:
        """True once we have read the lease at least once (we know who leads, maybe not us)."""
        return self._known

    def mark_observed(self) -> None:
        self._known = True

    @property
    def is_leader(self) -> bool:
        return self._always_open or self._leading

    def now(self) -> float:
        """The fence's clock; pass its reading to `mark_renewed` for a request that started now."""
        return self._clock()

    def mark_renewed(self, started_at: float | None = None) -> None:
        """A renewal succeeded; it counts from `started_at`, when its request was sent.

        Not from when the answer came: the apiserver committed it somewhere in between, and
        other replicas count the lease from that commit, so the earlier time is the safe one.
        """
        if not self.allows_writes():
            log.info("leading", fence="open")
        self._known = True
        self._leading = True
        self._last_renewal = self._clock() if started_at is None else started_at
        self._reported_closed = False

    def mark_lost(self, *, stepping_down: bool = False) -> None:
        """Leading ends: lost (a warning), or given up because the process stops (info)."""
        if self._leading and stepping_down:
            log.info("leadership_released", fence="closed", why="shutting down")
        elif self._leading:
            log.warning("leadership_lost", fence="closed")
        self._leading = False

    def allows_writes(self) -> bool:
        if self._always_open:
            return True
        fresh = self._clock() - self._last_renewal < self._deadline
        if self._leading and not fresh and not self._reported_closed:
            # The lease may still name us, but renewals stopped: writes end here, before
            # another replica can take the lease (see the module docstring).
            self._reported_closed = True
            log.warning("write_fence_closed", renew_deadline_s=self._deadline)
        return self._leading and fresh

    def write_window(self, lease_duration_s: float) -> float:
        """Seconds a write sent now may take and still end before another replica may hold the
        lease: up to `lease_duration_s` after our last renewal was sent. Unbounded without an
        election; 0 while we do not lead, when no write should be on its way at all."""
        if self._always_open:
            return math.inf
        if not self._leading:
            return 0.0
        return max(0.0, self._last_renewal + lease_duration_s - self._clock())

    def require(self) -> None:
        """Raise `NotLeader` unless a write is allowed now; call it right before each write."""
        if not self.allows_writes():
            raise NotLeader("this replica does not hold a fresh leader lease")


@dataclass(frozen=True, slots=True)
class ElectionSettings:
    lease_name: str = "federator-leader"
    namespace: str = "federator-system"
    identity: str = "federator"
    lease_duration_s: float = 15.0
    renew_deadline_s: float = 10.0
    retry_period_s: float = 2.0


class _FencedLeaseLock(LeaseLock):
    """A LeaseLock that tells the fence about every successful create or renewal."""

    def __init__(
        self,
        fence: Fence,
        request_timeout_s: float,
        refusals: _RefusalLog | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._fence = fence
        self._timeout = request_timeout_s
        # The campaign's, kept across election rounds (each round makes a new lock).
        self._refusals = refusals if refusals is not None else _RefusalLog()

    async def get(self, name: str, namespace: str) -> Any:
        """The library's get, but every failure comes back as the failed-read value it expects:
        `(False, ApiException)` whose body is JSON with a `code` (it asserts there is a body
        and parses it), instead of an exception that would end the election round."""
        try:
            async with asyncio.timeout(self._timeout):
                found, record = await super().get(name, namespace)
        except TRANSPORT_ERRORS as error:
            log.warning("leader_lease_not_read", error=described(error))
            return False, failed_read(0, f"no answer from the apiserver: {described(error)}")
        if found:
            self._fence.mark_observed()
            return found, record
        if isinstance(record, ApiException) and record.status == 404:
            self._fence.mark_observed()
        return False, _readable(record)

    async def create(self, name: str, namespace: str, election_record: Any) -> bool:
        return await self._timed(self._create(name, namespace, election_record))

    async def _create(self, name: str, namespace: str, election_record: Any) -> bool:
        """The library's create, but a refusal is logged with its reason (e.g. a missing
        namespace or a forbidden verb), since otherwise a replica silently never leads."""
        body = client.V1Lease(
            metadata=client.V1ObjectMeta(name=name), spec=self.update_lease(election_record)
        )
        try:
            await self.api_instance.create_namespaced_lease(namespace, body)
        except ApiException as error:
            if error.status != 409:  # 409: another replica created it first; that is normal
                self._refusals.refused(f"{namespace}/{name}", error, namespace=namespace)
            return False
        self._refusals.cleared()
        return True

    async def update(self, name: str, namespace: str, updated_record: Any) -> bool:
        return await self._timed(super().update(name, namespace, updated_record))

    async def _timed(self, call: Awaitable[bool]) -> bool:
        """Run a lease write within the request timeout; a success opens the fence, counted
        from when the request started; no answer at all is a failed write, not an error."""
        started_at = self._fence.now()
        try:
            async with asyncio.timeout(self._timeout):
                ok = await call
        except TRANSPORT_ERRORS as error:
            log.warning("leader_lease_not_written", error=described(error))
            ok = False
        if ok:
            self._fence.mark_renewed(started_at)
        return ok


class _RefusalLog:
    """Logs a refused Lease create once, then again only if it is refused another way or
    `REFUSAL_REPEAT_S` later (with how many were not logged), so one missing namespace does
    not fill the log with the same error every retry period."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last: tuple[int | None, float] | None = None  # status, when logged
        self._unlogged = 0

    def refused(self, lease: str, error: ApiException, *, namespace: str) -> None:
        now = self._clock()
        last = self._last
        if last is not None and last[0] == error.status and now - last[1] < REFUSAL_REPEAT_S:
            self._unlogged += 1
            return
        hint = _REFUSAL_HINTS.get(error.status or 0, _DEFAULT_REFUSAL_HINT)
        log.error(
            "leader_lease_not_created",
            lease=lease,
            status=error.status,
            reason=error.reason,
            hint=hint.format(namespace=namespace),
            **({"refused_again_unlogged": self._unlogged} if self._unlogged else {}),
        )
        self._last = (error.status, now)
        self._unlogged = 0

    def cleared(self) -> None:
        self._last = None
        self._unlogged = 0


class _SaidAlready(logging.Filter):
    """kubernetes-asyncio's own "failed to create lock" says less than our
    `leader_lease_not_created` (which names the reason and the fix) and came every retry."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != "%s failed to create lock"


logging.getLogger(leaderelection.__name__).addFilter(_SaidAlready())


def described(error: BaseException) -> str:
    """`TimeoutError` has no text of its own; its type is the message. An `ApiException` is its
    status and reason (its text also carries every HTTP header of the answer)."""
    if isinstance(error, ApiException):
        return f"ApiException: {error.status} {error.reason}"
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def failed_read(status: int, reason: str) -> ApiException:
    """A failed lease read in the shape the library parses: a body with the status `code`."""
    error = ApiException(status=status, reason=reason)
    error.body = json.dumps({"code": status, "reason": reason}).encode()
    return error


def _readable(record: Any) -> ApiException:
    """The library's own failed read, made parseable even when the answer was not a Kubernetes
    Status (e.g. an HTML 502 from a proxy, or no body at all)."""
    if not isinstance(record, ApiException):
        return failed_read(0, f"unexpected lease read result: {type(record).__name__}")
    try:
        code = json.loads(record.body or b"")["code"]
    except (TypeError, ValueError, KeyError):
        code = None
    if isinstance(code, int):
        return record
    return failed_read(record.status or 0, str(record.reason))


async def campaign(
    api: client.ApiClient,
    settings: ElectionSettings,
    *,
    fence: Fence,
    lead: Callable[[], Coroutine[Any, Any, None]],
    stop: asyncio.Event,
) -> None:
    """Run for leader until `stop`; run `lead()` while leading; re-run after losing the lease.

    Meanwhile every cluster's writes wait no longer than the lease has left (module docstring).
    """
    with clients.writes_within(lambda: fence.write_window(settings.lease_duration_s)):
        await _campaign(api, settings, fence=fence, lead=lead, stop=stop)


async def _campaign(
    api: client.ApiClient,
    settings: ElectionSettings,
    *,
    fence: Fence,
    lead: Callable[[], Coroutine[Any, Any, None]],
    stop: asyncio.Event,
) -> None:
    refusals = _RefusalLog()
    while not stop.is_set():
        lock = _FencedLeaseLock(
            fence,
            request_timeout_s=settings.retry_period_s,
            refusals=refusals,
            name=settings.lease_name,
            namespace=settings.namespace,
            identity=settings.identity,
            api_client=api,
        )

        async def stopped_leading() -> None:
            fence.mark_lost(stepping_down=stop.is_set())

        config = electionconfig.Config(
            lock,
            lease_duration=whole_lease_seconds(settings.lease_duration_s),
            renew_deadline=settings.renew_deadline_s,
            retry_period=settings.retry_period_s,
            onstarted_leading=lead,
            onstopped_leading=stopped_leading,
        )
        election = leaderelection.LeaderElection(config)
        run = asyncio.ensure_future(election.run())
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({run, stopping}, return_when=asyncio.FIRST_COMPLETED)
        for task in (run, stopping):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task_outcome(task)
        fence.mark_lost(stepping_down=stop.is_set())
        # A round ends by losing the lease or by an error; either way the next try waits a
        # retry period, so an unexpected failure cannot become a busy loop of tracebacks.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), settings.retry_period_s)


async def task_outcome(task: asyncio.Future[Any]) -> None:
    """Await a finished election round; an error in it is logged, and the campaign goes on."""
    try:
        await task
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("leader_election_round_failed")


def whole_lease_seconds(lease_duration_s: float) -> int:
    """The lease duration as the library writes it (str, parsed back with int()): rounded up,
    since rounding down could eat the margin over `renew_deadline + retry_period`."""
    return max(1, math.ceil(lease_duration_s))


async def release(
    api: client.ApiClient, settings: ElectionSettings, *, timeout_s: float = RELEASE_TIMEOUT_S
) -> bool:
    """Give the lease up on a clean shutdown so a follower need not wait for it to expire.

    Clearing the holder only works if we still hold it; the replace carries the
    resourceVersion we read, so it cannot clobber a lease another replica took meanwhile.
    Best effort within `timeout_s`: if it fails, the lease simply expires.
    """
    try:
        async with asyncio.timeout(timeout_s):
            return await _clear_holder(client.CoordinationV1Api(api), settings)
    except Exception as error:  # noqa: BLE001 - any failure means "not released", never a crash
        log.warning(
            "leader_lease_not_released",
            lease=f"{settings.namespace}/{settings.lease_name}",
            error=described(error),
            hint="the lease expires by itself after lease_duration",
        )
        return False


async def _clear_holder(leases: client.CoordinationV1Api, settings: ElectionSettings) -> bool:
    try:
        lease = await leases.read_namespaced_lease(settings.lease_name, settings.namespace)
    except ApiException as error:
        if error.status == 404:  # never created (e.g. the namespace is missing): nothing to give
            return False
        raise
    if lease.spec.holder_identity != settings.identity:
        return False
    lease.spec.holder_identity = ""
    lease.spec.lease_duration_seconds = 1
    await leases.replace_namespaced_lease(settings.lease_name, settings.namespace, lease)
    return True
