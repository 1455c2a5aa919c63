"""Keeps the preemption ledger in a ConfigMap on the on-prem cluster, so restarts remember.

Why a ConfigMap: federator keeps its state in Kubernetes objects (no database, nothing on a
pod's disk); the ledger is small (daily buckets per pool, bounded by `MAX_BUCKETS`) and is
written by the leader only. One key, `ledger.json`, holds the whole ledger.

Writes are optimistic: a replace carries the `resourceVersion` last read, and a 409 Conflict
(another replica wrote in between, e.g. around a leader hand-over) is resolved by re-reading,
merging per pool and day (the larger bucket wins, see `_merge`) and writing again. A ConfigMap
whose content cannot be read is never silently overwritten: `load` raises, and the daemon
decides (an operator can delete the object to start from the priors again).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from federator.prices.preemption import EvidenceBucket, PreemptionLedger

log = structlog.get_logger(__name__)

DEFAULT_NAME = "federator-preemption-stats"
DATA_KEY = "ledger.json"


class PreemptionStore(Protocol):
    """The port the daemon uses: read the ledger at start, write it after new evidence."""

    async def load(self) -> PreemptionLedger: ...

    async def save(self, ledger: PreemptionLedger) -> None: ...


class CorruptLedger(Exception):
    """The ConfigMap exists but does not hold a ledger this version can read."""


@dataclass(slots=True)
class ConfigMapPreemptionStore:
    """`PreemptionStore` in ConfigMap `name` of `namespace` (created on first save)."""

    api_client: Any  # kubernetes_asyncio ApiClient for the on-prem cluster
    namespace: str = "federator"
    name: str = DEFAULT_NAME
    attempts: int = 5
    _resource_version: str | None = None

    async def load(self) -> PreemptionLedger:
        found = await self._read()
        if found is None:
            self._resource_version = None
            return PreemptionLedger()
        ledger, version = found
        self._resource_version = version
        return ledger

    async def save(self, ledger: PreemptionLedger) -> None:
        retrying = AsyncRetrying(
            retry=retry_if_exception(_is_conflict),
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=0.1, max=2) + wait_random(0, 0.1),
            reraise=True,
        )
        pending = ledger
        async for attempt in retrying:
            with attempt:
                if attempt.retry_state.attempt_number > 1:
                    found = await self._read()
                    theirs = found[0] if found else PreemptionLedger()
                    self._resource_version = found[1] if found else None
                    pending = _merge(ledger, theirs)
                    log.info("preemption ledger write conflicted; merged and retrying",
                             configmap=f"{self.namespace}/{self.name}")  # fmt: skip
                await self._write(pending)

    async def _read(self) -> tuple[PreemptionLedger, str] | None:
        api = client.CoreV1Api(self.api_client)
        try:
            found = await api.read_namespaced_config_map(self.name, self.namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        text = (found.data or {}).get(DATA_KEY, "")
        try:
            ledger = PreemptionLedger.from_json(text)
        except ValueError as error:
            raise CorruptLedger(
                f"ConfigMap {self.namespace}/{self.name} key {DATA_KEY}: {error}; delete the "
                "ConfigMap to start again from the priors"
            ) from error
        return ledger, str(found.metadata.resource_version)

    async def _write(self, ledger: PreemptionLedger) -> None:
        api = client.CoreV1Api(self.api_client)
        body = client.V1ConfigMap(
            metadata=client.V1ObjectMeta(
                name=self.name,
                namespace=self.namespace,
                labels={"app.kubernetes.io/managed-by": "federator"},
                resource_version=self._resource_version,
            ),
            data={DATA_KEY: ledger.to_json()},
        )
        if self._resource_version is None:
            written = await api.create_namespaced_config_map(self.namespace, body)
        else:
            written = await api.replace_namespaced_config_map(self.name, self.namespace, body)
        self._resource_version = str(written.metadata.resource_version)


def _is_conflict(error: BaseException) -> bool:
    # 409 on replace (stale resourceVersion) and on create (someone created it first).
    return isinstance(error, ApiException) and error.status == 409


def _merge(ours: PreemptionLedger, theirs: PreemptionLedger) -> PreemptionLedger:
    """Per pool and day, keep the bucket with more exposure: both writers only ever add, so
    the larger one has seen at least as much; nothing is counted twice."""
    pools: dict[str, tuple[EvidenceBucket, ...]] = {}
    for name in sorted(set(ours.pools) | set(theirs.pools)):
        by_day: dict[float, EvidenceBucket] = {}
        for bucket in (*theirs.pools.get(name, ()), *ours.pools.get(name, ())):
            kept = by_day.get(bucket.start)
            if kept is None or (bucket.job_hours, bucket.preemptions) > (
                kept.job_hours,
                kept.preemptions,
            ):
                by_day[bucket.start] = bucket
        pools[name] = tuple(by_day[start] for start in sorted(by_day))
    return PreemptionLedger(pools)
