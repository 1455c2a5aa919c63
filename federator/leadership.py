"""Leader election on a `coordination.k8s.io` Lease, with a fence that stops writes in time.

Only the leader acts; followers keep observing so their caches are warm when they take over.
kubernetes-asyncio's `LeaderElection` does the Lease protocol; what it does not do is fencing:
its leading task is cancelled only after `renew_deadline` of failed renewals, and a write
already in flight could still land afterwards. So every write path asks `Fence.allows_writes()`
first, and the fence closes by itself when the last successful renewal is older than
`renew_deadline` — measured on this process's monotonic clock, so it needs no API call to close.

Safety margin: another replica can take the lease only `lease_duration` after it last saw the
lease change, and `lease_duration > renew_deadline + request timeout`, so our last write has
finished (or failed) before anyone else may start writing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import structlog
from kubernetes_asyncio import client
from kubernetes_asyncio.client.rest import ApiException
from kubernetes_asyncio.leaderelection import electionconfig, leaderelection
from kubernetes_asyncio.leaderelection.resourcelock.leaselock import LeaseLock

log = structlog.get_logger(__name__)


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

    def mark_renewed(self) -> None:
        if not self.allows_writes():
            log.info("leading", fence="open")
        self._known = True
        self._leading = True
        self._last_renewal = self._clock()
        self._reported_closed = False

    def mark_lost(self) -> None:
        if self._leading:
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

    def __init__(self, fence: Fence, request_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._fence = fence
        self._timeout = request_timeout_s

    async def get(self, name: str, namespace: str) -> Any:
        try:
            async with asyncio.timeout(self._timeout):
                found, record = await super().get(name, namespace)
        except TimeoutError as error:
            return False, ApiException(status=0, reason=f"timeout: {error}")
        if found or (isinstance(record, ApiException) and record.status == 404):
            self._fence.mark_observed()
        return found, record

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
                log.error(
                    "leader_lease_not_created",
                    lease=f"{namespace}/{name}",
                    status=error.status,
                    reason=error.reason,
                    hint="the lease namespace must exist and the identity may create Leases",
                )
            return False
        return True

    async def update(self, name: str, namespace: str, updated_record: Any) -> bool:
        return await self._timed(super().update(name, namespace, updated_record))

    async def _timed(self, call: Awaitable[bool]) -> bool:
        try:
            async with asyncio.timeout(self._timeout):
                ok = await call
        except TimeoutError:
            ok = False
        if ok:
            self._fence.mark_renewed()
        return ok


async def campaign(
    api: client.ApiClient,
    settings: ElectionSettings,
    *,
    fence: Fence,
    lead: Callable[[], Coroutine[Any, Any, None]],
    stop: asyncio.Event,
) -> None:
    """Run for leader until `stop`; run `lead()` while leading; re-run after losing the lease."""
    while not stop.is_set():
        lock = _FencedLeaseLock(
            fence,
            request_timeout_s=settings.retry_period_s,
            name=settings.lease_name,
            namespace=settings.namespace,
            identity=settings.identity,
            api_client=api,
        )

        async def stopped_leading() -> None:
            fence.mark_lost()

        config = electionconfig.Config(
            lock,
            # Whole seconds: the library writes str(lease_duration) and parses it back with int().
            lease_duration=max(1, round(settings.lease_duration_s)),
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
        fence.mark_lost()


async def task_outcome(task: asyncio.Future[Any]) -> None:
    """Await a finished election round; an error in it is logged, and the campaign goes on."""
    try:
        await task
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("leader_election_round_failed")


async def release(api: client.ApiClient, settings: ElectionSettings) -> bool:
    """Give the lease up on a clean shutdown so a follower need not wait for it to expire.

    Clearing the holder only works if we still hold it; the replace carries the
    resourceVersion we read, so it cannot clobber a lease another replica took meanwhile.
    """
    leases = client.CoordinationV1Api(api)
    try:
        lease = await leases.read_namespaced_lease(settings.lease_name, settings.namespace)
        if lease.spec.holder_identity != settings.identity:
            return False
        lease.spec.holder_identity = ""
        lease.spec.lease_duration_seconds = 1
        await leases.replace_namespaced_lease(settings.lease_name, settings.namespace, lease)
    except ApiException:
        return False
    return True
