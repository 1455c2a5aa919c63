"""The background loops the composition root runs around the federation.

Each loop takes the process's `Parts` and a `stop` event, finishes its current step when
`stop` is set, and reads its interval from the policy in force each time round (a reload
applies at the next tick): a federation pass per decision interval (then telling its
decisions), the price refresh, saving preemption evidence, bringing models back from the
clouds' staging registries, and re-syncing dataset replicas. Only the leader's loops write.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Iterable

import structlog

from federator.daemon.assembly import Parts
from federator.daemon.replicas import (
    replica_exists,
    replica_pairs_with_stores,
    resync_known_replicas,
)
from federator.daemon.telling import record_decisions, tell_decisions, watch_budgets
from federator.federation.federation import Federation
from federator.prices.live import refresh_all
from federator.prices.preemption import PreemptionLedger
from federator.storage.retrying import RetriesStopped
from federator.syncing import modelsync

log = structlog.get_logger(__name__)

EVIDENCE_SAVE_S = 60.0


async def federate(parts: Parts, stop: asyncio.Event) -> None:
    """One federation pass per decision interval; only the leader's passes write."""
    while not stop.is_set():
        try:
            report = await parts.federation.run_once(time.time())
            record_decisions(parts, report)
            await tell_decisions(parts, report)
            await watch_budgets(parts, report)
            parts.replicator.publish_metrics()
        except Exception:  # the one guard that keeps the daemon alive through a bad pass
            log.exception("federation_pass_failed")
        await _sleep(parts.holder.config.burst.decision_interval.total_seconds(), stop)


async def refresh_prices(parts: Parts, stop: asyncio.Event) -> None:
    # Read each time round, so a reloaded `prices.refresh_interval` applies at the next tick.
    while await _sleep(parts.holder.config.prices.refresh_interval.total_seconds(), stop):
        await refresh_all(parts.offers.pricings, time.time())


async def save_evidence(parts: Parts, stop: asyncio.Event) -> None:
    """Persist preemption counts and exposure so the estimate survives a restart.

    The federation counts this process's preemptions and copy-hours in memory; each round adds
    what is new since the last save to the ledger loaded at start, and saves the whole ledger.
    A copy of up to one node's GPUs runs on one node, so its hours count as node-hours too.
    """
    ledger = parts.evidence_at_start
    saved: dict[tuple[str, str], tuple[int, float]] = {}
    while await _sleep(EVIDENCE_SAVE_S, stop):
        if not parts.fence.allows_writes():
            continue
        ledger, saved = _add_new_evidence(ledger, saved, parts.federation, time.time())
        try:
            await parts.evidence_store.save(ledger)
        except Exception:
            log.warning("preemption_evidence_not_saved", exc_info=True)


def _add_new_evidence(
    ledger: PreemptionLedger,
    saved: dict[tuple[str, str], tuple[int, float]],
    federation: Federation,
    now: float,
) -> tuple[PreemptionLedger, dict[tuple[str, str], tuple[int, float]]]:
    saved = dict(saved)
    for key in set(federation.preemptions) | set(federation.exposure_h):
        count, hours = federation.preemptions.get(key, 0), federation.exposure_h.get(key, 0.0)
        before_count, before_hours = saved.get(key, (0, 0.0))
        if (count, hours) == (before_count, before_hours):
            continue
        ledger = ledger.record(
            pool="/".join(key),
            preemptions=count - before_count,
            job_hours=hours - before_hours,
            node_hours=hours - before_hours,
            gpu_hours=0.0,
            at=now,
        )
        saved[key] = (count, hours)
    return ledger, saved


async def sync_models_back(parts: Parts, stop: asyncio.Event) -> None:
    """Checkpoints and models from every cloud's staging registry back to the on-prem one.

    Only the leader copies; the copy is idempotent (blobs first, verified, manifest last), so a
    round cut short by a leadership change or a crash is finished by the next one.
    """
    registry = parts.holder.config.registry
    assert registry is not None
    interval = registry.checkpoint_sync_interval.total_seconds()
    clouds = parts.stores.cloud_clusters()
    while await _sleep(interval, stop):
        if not parts.fence.allows_writes():
            continue
        try:
            results = await modelsync.sync_models_once(parts.stores, clouds)
        except RetriesStopped:  # a shutdown cut the round short: expected, not a fault
            log.info("model_sync_back_stopped", hint="the next start finishes the round")
        except Exception:
            log.warning("model_sync_back_failed", exc_info=True)
        else:
            _log_sync_back_round(results)


def _log_sync_back_round(results: Iterable[modelsync.RoundResult]) -> None:
    """What a round did not bring home, and why: one version that fails every round (a blob
    that does not match its digest, a store that refuses us) is otherwise silent, and its job's
    cloud copy is kept waiting for it."""
    for result in results:
        for version, error in result.failures:
            log.warning(
                "model_version_sync_back_failed",
                cluster=result.cluster,
                version=version,
                error=error,
                hint="tried again at the next registry.checkpoint_sync_interval",
            )
        if result.left_for_next_round:
            log.info(
                "model_sync_back_stopped",
                cluster=result.cluster,
                left_for_next_round=result.left_for_next_round,
                hint="the next start finishes the round",
            )


async def resync_replicas(parts: Parts, stop: asyncio.Event) -> None:
    """Every `sync.interval`, the leader re-syncs each dataset replica that exists.

    Without it a replica is synced only when a job bursts to its cloud, so between bursts it
    falls behind its source unseen and `federator_sync_lag_seconds` of a complete replica climbs
    for ever. A replica this process has not touched is found in the cloud's store (a restart
    forgets what memory knew); a dataset never sent to a cloud is not copied there ahead of a
    job. A failure is logged; a failed copy or listing is tried again at the first interval
    after the replica's backoff, anything else at the next interval. A cloud cluster whose
    store the running stores do not have (added by a reload) is left out until a restart:
    `follow_reloaded_datasets` says so once per reload. A draining cloud is left out too.
    """
    while await _sleep(parts.holder.config.sync.interval.total_seconds(), stop):
        if not parts.writes_allowed():
            continue
        # A draining cloud takes no new job: refreshing its replicas would only pay transfers.
        draining = parts.federation.settings.draining_clusters
        pairs = [
            (dataset, cluster)
            for dataset, cluster in replica_pairs_with_stores(parts.holder.config, parts.stores)
            if cluster not in draining
        ]
        exists = functools.partial(replica_exists, parts.stores)
        await resync_known_replicas(
            parts.replicator, pairs, exists=exists, may_write=parts.writes_allowed
        )
        parts.replicator.publish_metrics()


async def _sleep(seconds: float, stop: asyncio.Event) -> bool:
    """Sleep unless stopped earlier; True means carry on."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    return not stop.is_set()
