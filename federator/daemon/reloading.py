"""A reloaded policy file reaching the running parts.

The file is reloaded on SIGHUP or when it changes on disk (a ConfigMap update replaces it).
A valid new policy then reaches what reads it per pass at once; the federation's settings and
the metric series are rebuilt, the replicator forgets every replica whose definition changed,
and the clouds' copies rewrite the new data locations. What is fixed at start (clusters,
stores, registry, price sources) waits for a restart, and a cloud store added by a reload is
named in a warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses

import structlog

from federator import errors, policy
from federator.daemon.assembly import Parts, federation_settings
from federator.daemon.observers import location_rewrites
from federator.daemon.policy_file import initialise_metrics
from federator.daemon.replicas import clouds_without_store, replica_pairs
from federator.federation import FederationSettings
from federator.storage.stores import ReplicaDefinition, replica_definition

log = structlog.get_logger(__name__)


async def watch_config(parts: Parts, stop: asyncio.Event, hup: asyncio.Event) -> None:
    """Reload on SIGHUP or when the file changes (a ConfigMap update replaces the file)."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(hup.wait(), timeout=2.0)
        if hup.is_set() or parts.holder.changed_on_disk():
            hup.clear()
            before = parts.holder.config
            if parts.holder.reload():
                apply_reloaded(parts)
                follow_reloaded_datasets(parts, before)


def apply_reloaded(parts: Parts) -> None:
    """The loop's knobs follow a reloaded policy too (the decision policy, tenants, burst
    rules and default runtimes are read per pass), and so do the datasets: their locations,
    `sync_before_start` and the `sync` section's transfer and delete settings (see
    `follow_reloaded_datasets`). Fixed at start, applied by a restart: the clusters and
    watched namespaces, the object stores and how they are reached (endpoints, credentials,
    request limits), the model registry and its staging areas, the price sources, and how
    cloud copies are built (pool selectors, copied ConfigMaps and Secrets). A cluster's
    `draining` is read per pass: set by a reload, that cluster takes no new placement at once."""
    settings = federation_settings(
        parts.holder.config, watched_namespaces=parts.federation.settings.watched_namespaces
    )
    parts.federation.settings = _draining_removed_clouds(parts, settings)
    initialise_metrics(parts.holder.config)  # a reload may add caps and tenants


def _draining_removed_clouds(parts: Parts, settings: FederationSettings) -> FederationSettings:
    """A cloud the reloaded file no longer names stays connected and priced until a restart
    (clusters are fixed at start): it drains meanwhile, or new jobs would still go there and
    the restart would leave them unmanaged (docs/operations.md, retiring a cloud)."""
    named = {cluster.name for cluster in parts.holder.config.cloud_clusters}
    removed = sorted(set(parts.clouds) - named)
    if not removed:
        return settings
    log.warning(
        "cloud_removed_until_restart",
        clusters=removed,
        hint="no new job goes there; its jobs run on, are mirrored and collected until "
        "federator restarts, and a restart leaves the ones still there unmanaged: restart once "
        "`federator status` shows no job there",
    )
    return dataclasses.replace(
        settings, draining_clusters=settings.draining_clusters | frozenset(removed)
    )


def follow_reloaded_datasets(parts: Parts, before: policy.FederatorConfig) -> None:
    """Datasets follow the reloaded policy: the stores read their locations from it when a copy
    engine is built, and the re-sync loop its dataset list; here the replicator forgets every
    replica whose definition changed (moved, re-settled or removed; a copy running now
    finishes to its old location, and the next check lists the new one with a new engine),
    and the clouds' copies rewrite the new locations into the jobs they create. A removed
    dataset's replica is left in its store as it is: nothing deletes it. A cloud cluster whose
    store is not running (added by a reload) is named in one warning per reload: the re-sync
    loop leaves it out until a restart."""
    after, start = parts.holder.config, parts.stores.built_from
    pairs = set(replica_pairs(before)) | set(replica_pairs(after))
    changed = [
        pair
        for pair in sorted(pairs)
        if _replica_definition(before, *pair) != _replica_definition(after, *pair)
    ]
    for dataset, cluster in changed:
        parts.replicator.forget(dataset, cluster)
    if changed:
        log.info(
            "replicas_redefined",
            replicas=[f"{dataset}->{cluster}" for dataset, cluster in changed],
            hint="each is checked again at its next use, as the reloaded policy defines it",
        )
    onprem = start.onprem_cluster.name
    for name, cloud in parts.clouds.items():
        rewrites = location_rewrites(after, onprem, name, staging_from=start)
        cloud.settings = dataclasses.replace(cloud.settings, rewrites=rewrites)
    if waiting := clouds_without_store(after, parts.stores):
        log.warning(
            "cloud_store_needs_restart",
            clusters=waiting,
            hint="added by a reload: object stores are set up at start, so the replicas on "
            "these clusters are neither copied nor re-synced until federator is restarted",
        )


def _replica_definition(
    config: policy.FederatorConfig, dataset: str, cluster: str
) -> ReplicaDefinition | None:
    """What `dataset`'s copy engine to `cluster` is built from under `config`; None if the
    dataset has no replica there."""
    try:
        return replica_definition(config, dataset, cluster)
    except errors.UserError:
        return None
