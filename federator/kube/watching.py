"""Reflectors: keep a local copy of one kind of object by list + watch, forever.

A Reflector lists once, then watches from the list's resourceVersion with bookmarks on, so a
quiet watch still advances its resourceVersion and a reconnect rarely finds it compacted. When
it is (`410 Gone`, as an HTTP status or as an ERROR event), the Reflector relists and replaces
its whole cache, which also drops any object deleted while we were not watching. Neither a
late event nor a list replaces our own newer write (`put`): resourceVersions are opaque in
theory, but etcd's are integers and are compared where both are (where not, the last arrival
wins). The watch is re-opened every `watch_timeout_s` by the server's own timeout, which
detects half-dead connections without a client-side guess.

Failures mark the cluster down (`clients.Health`), and a watch that opens or delivers an event
(a bookmark too) marks it up again: one failed write must not keep a cluster whose watches work
"down" until its copies count as lost. Credentials refused (401) are an outage like any
other. A read refused by RBAC (403 on one kind) is not: that Reflector's cache stops counting
as synced until it lists again (`clients.Health.refused`), so the cluster's jobs wait rather
than being taken as lost while its other watches stream.
The list is retried with exponential backoff and jitter (tenacity); the backoff starts again
from its first step after each successful list. Each Reflector runs in its own task, so one
cluster that stops answering never delays another's observation.

The cache holds the apiserver's JSON dicts, keyed "<namespace>/<name>"; readers convert them
with `federator.kube.convert` and must not mutate them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from kubernetes_asyncio import watch
from kubernetes_asyncio.client.rest import ApiException
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    retry_if_not_exception_type,
    wait_exponential_jitter,
)

from federator import errors
from federator.kube import errors as kube_errors
from federator.kube.clients import Cluster

log = structlog.get_logger(__name__)

AUTH_FAILED = frozenset({401})  # credentials refused (expired, revoked): an outage (R7)


@dataclass(frozen=True, slots=True)
class Resource:
    """What to reflect: the collection path, and an optional label selector."""

    kind: str
    path: str  # e.g. "/apis/batch/v1/jobs" (all namespaces)
    label_selector: str | None = None


JOBS = Resource("Job", "/apis/batch/v1/jobs")
PODS = Resource("Pod", "/api/v1/pods")
NODES = Resource("Node", "/api/v1/nodes")
WORKLOADS = Resource("Workload", "/apis/kueue.x-k8s.io/v1beta2/workloads")
CLUSTER_QUEUES = Resource("ClusterQueue", "/apis/kueue.x-k8s.io/v1beta2/clusterqueues")
LOCAL_QUEUES = Resource("LocalQueue", "/apis/kueue.x-k8s.io/v1beta2/localqueues")


def object_key(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


class Reflector:
    """A live, local copy of every object of one `Resource` on one cluster."""

    def __init__(
        self,
        cluster: Cluster,
        resource: Resource,
        *,
        watch_timeout_s: int = 60,
        max_backoff_s: float = 30.0,
    ) -> None:
        self.cluster = cluster
        self.resource = resource
        self.items: dict[str, dict[str, Any]] = {}
        self.resource_version: str | None = None
        self.synced = False  # listed, and watching since, without a break
        self.relists = 0
        self._watch_timeout_s = watch_timeout_s
        self._max_backoff_s = max_backoff_s
        self.changed = asyncio.Event()  # set on every change; readers clear it
        # Our own writes while a list is on its way: the list may have been taken before them.
        self._written_while_listing: dict[str, dict[str, Any]] | None = None

    async def run(self) -> None:
        """List, then watch until the watch breaks; relist; forever (cancel to stop)."""
        while True:
            try:
                await self._list_with_backoff()
                self.cluster.health.accepted(self.resource.path)
                await self._watch_until_broken()
            except kube_errors.NotFound:
                # The resource is not served (e.g. Kueue's CRDs are not installed): there is
                # nothing of this kind. Say so once in a while and look again later.
                log.warning(
                    "resource_not_served", cluster=self.cluster.name, kind=self.resource.kind
                )
                self.items, self.synced = {}, True
                self.cluster.health.accepted(self.resource.path)  # an answer, not a refusal
                await asyncio.sleep(self._max_backoff_s)
            except (kube_errors.KubeError, errors.CredentialsRefused) as e:
                # The apiserver answered and refused (401, 403, 422 …): no traceback to show,
                # only the answer; it is retried after the longest backoff in case it is fixed,
                # or as soon as the cluster's credentials are rotated (`rotation`).
                log.warning(
                    "reflector_refused",
                    cluster=self.cluster.name,
                    kind=self.resource.kind,
                    status=e.status,
                    reason=str(e),
                )
                self.synced = False  # the cache no longer follows the cluster
                if e.status in AUTH_FAILED:  # refused as who we are: the cluster is unusable
                    self.cluster.health.mark_failed(str(e))
                else:  # one read refused (RBAC): its jobs wait, see `clients.Health`
                    self.cluster.health.refused(self.resource.path, str(e))
                await self.cluster.new_credentials(within_s=self._max_backoff_s)
            except Exception as e:  # the one place a reflector survives a surprise
                log.exception(
                    "reflector_failed", cluster=self.cluster.name, kind=self.resource.kind
                )
                self.cluster.health.mark_failed(f"{type(e).__name__}: {e}")
                await asyncio.sleep(self._max_backoff_s)

    async def relist(self) -> None:
        """One list request; replaces the cache and the resourceVersion to watch from.

        Our own writes made while the list was on its way stay when they are newer than it:
        the list may have been taken before them, and dropping one (a placement record just
        written) would show the collector a copy with no record."""
        params: dict[str, Any] = {}
        if self.resource.label_selector:
            params["labelSelector"] = self.resource.label_selector
        self._written_while_listing = {}
        try:
            data = await self.cluster.request("GET", self.resource.path, params=params)
        finally:
            written, self._written_while_listing = self._written_while_listing, None
        version = (data.get("metadata") or {}).get("resourceVersion")
        self.items = _listed_keeping_later_writes(data.get("items") or (), written, version)
        self.resource_version = version
        self.synced = True
        self.relists += 1
        self.changed.set()

    async def _list_with_backoff(self) -> None:
        retrying = AsyncRetrying(
            # Refused credentials are waited out below, until the kubeconfig is rotated.
            retry=retry_if_exception_type(errors.TransientError)
            & retry_if_not_exception_type(errors.CredentialsRefused),
            wait=wait_exponential_jitter(multiplier=0.5, max=self._max_backoff_s),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                await self.relist()

    async def _watch_until_broken(self) -> None:
        """Watch from `resource_version`; return when a relist is needed."""
        while True:
            try:
                await self._watch_once()
            except kube_errors.Gone:
                log.info("watch_expired", cluster=self.cluster.name, kind=self.resource.kind)
                return
            except errors.TransientError as e:
                # The cache may be missing whatever happened while the cluster was away; it
                # does not count as synced again until the next list succeeds.
                self.synced = False
                log.info("watch_broken", cluster=self.cluster.name, kind=self.resource.kind, e=e)
                return

    async def _watch_once(self) -> None:
        stream = watch.Watch()
        params: dict[str, Any] = {
            "resource_version": self.resource_version,
            "allow_watch_bookmarks": True,
            "timeout_seconds": self._watch_timeout_s,
            "label_selector": self.resource.label_selector,
            "_request_timeout": self._watch_timeout_s + 15,
        }
        try:
            async with stream:
                async for event in stream.stream(
                    self.cluster.open_watch, self.resource.path, **params
                ):
                    self.cluster.health.mark_ok()  # it answers now, whatever a write said before
                    self._apply(event)
        except ApiException as e:
            raise self.cluster.failure(e, False) from e
        except kube_errors.TRANSPORT_ERRORS as e:
            raise self.cluster.failure(e, False) from e
        version = getattr(stream, "resource_version", None)  # the last one the stream saw
        if version:
            self.resource_version = str(version)

    def _apply(self, event: Mapping[str, Any]) -> None:
        kind = str(event.get("type", "")).upper()
        obj = event.get("raw_object") or {}
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if version:
            self.resource_version = str(version)
        if kind == "BOOKMARK":
            return
        current = self.items.get(object_key(obj))
        if current is not None and version and _newer(current, version):
            # Our own write (`put`) got ahead of the watch: this event is older and would
            # bring back what we replaced; the watch delivers our version next.
            return
        if kind == "DELETED":
            self.items.pop(object_key(obj), None)
        elif kind in ("ADDED", "MODIFIED"):
            self.items[object_key(obj)] = obj
        self.changed.set()

    def put(self, obj: dict[str, Any]) -> None:
        """Record our own successful write at once (the watch confirms it moments later)."""
        meta = obj.get("metadata") or {}
        current = self.items.get(object_key(obj))
        if current is not None and _newer(current, meta.get("resourceVersion")):
            return
        self.items[object_key(obj)] = obj
        if self._written_while_listing is not None:
            self._written_while_listing[object_key(obj)] = obj

    def forget(self, key: str) -> None:
        self.items.pop(key, None)


def _listed_keeping_later_writes(
    listed: Iterable[dict[str, Any]], written: Mapping[str, dict[str, Any]], version: object
) -> dict[str, dict[str, Any]]:
    """A list's objects, and those of our own writes made while it was on its way that are
    newer than the list (`version`): the watch from `version` tells what became of them. Only
    those: an object cached from before the list and missing from it was deleted meanwhile."""
    items = {object_key(item): item for item in listed}
    for key, ours in written.items():
        if _newer(ours, version):  # so newer than every object of the list too
            items[key] = ours
    return items


def _newer(current: Mapping[str, Any], version: object) -> bool:
    """True when `current` is newer than `version` (opaque in theory; etcd's are integers)."""
    try:
        return int((current.get("metadata") or {}).get("resourceVersion") or 0) > int(
            str(version or 0)
        )
    except ValueError:
        return False
