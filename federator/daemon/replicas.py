"""Which dataset replicas the policy defines and exist, and one re-sync round over them.

A replica is a (dataset, cloud cluster) pair with a replica location in the policy. The
re-sync loop (`loops.resync_replicas`) checks each one that is in use or found in the cloud's
store, and logs the ones that failed; a cloud whose store the running stores do not have
(added by a reload) is left out until a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable

import structlog

from federator import errors, policy
from federator.storage.stores import Stores
from federator.syncing.replication import Replicator

log = structlog.get_logger(__name__)


def replica_pairs(*configs: policy.FederatorConfig) -> list[tuple[str, str]]:
    """(dataset, cloud cluster) pairs with a replica location in every config given (the
    re-sync loop gives the policy in force, so a dataset added by a reload is covered); a
    dataset kept on-prem by a residency rule has none."""
    found: list[set[tuple[str, str]]] = []
    for config in configs:
        pairs = set()
        for dataset in config.datasets:
            for cluster in config.cloud_clusters:
                with contextlib.suppress(errors.UserError):
                    policy.dataset_uri(config, dataset.name, cluster.name)
                    pairs.add((dataset.name, cluster.name))
        found.append(pairs)
    return sorted(set.intersection(*found)) if found else []


def replica_pairs_with_stores(
    config: policy.FederatorConfig, stores: Stores
) -> list[tuple[str, str]]:
    """The replica pairs of `config` whose cloud's store the running stores have. A cloud
    cluster added by a reload has none until a restart (`Stores` refuses it); asked anyway, its
    every dataset failed `replica_resync_failed` at every interval."""
    with_store = set(stores.cloud_clusters())
    return [pair for pair in replica_pairs(config) if pair[1] in with_store]


def clouds_without_store(config: policy.FederatorConfig, stores: Stores) -> list[str]:
    """Cloud clusters of `config` with an object store that the running stores do not have:
    added (or given their store) by a reload, used after a restart."""
    with_store = set(stores.cloud_clusters())
    return [
        cluster.name
        for cluster in config.cloud_clusters
        if cluster.object_store is not None and cluster.name not in with_store
    ]


def replica_exists(stores: Stores, dataset: str, cluster: str) -> bool:
    """Whether the replica location holds any object (one small listing): a replica exists.
    The location is the one the policy in force gives (`Stores.config`)."""
    uri = policy.dataset_uri(stores.config, dataset, cluster)
    target = stores.location(cluster, uri, where=f"datasets.{dataset}.replicas.{cluster}")
    listed = stores.client(cluster).list_objects_v2(
        Bucket=target.bucket, Prefix=target.prefix, MaxKeys=1
    )
    return bool(listed.get("KeyCount") or listed.get("Contents"))


async def resync_known_replicas(
    replicator: Replicator,
    pairs: Iterable[tuple[str, str]],
    *,
    exists: Callable[[str, str], bool],
    may_write: Callable[[], bool],
) -> list[tuple[str, str]]:
    """One round: each pair the replicator has in use (checked, or checked before a reload
    moved it: `Replicator.in_use`), or whose replica exists in the store, is checked again
    and, if behind, copied in the background; the round then waits for every pair checked to
    settle (`sync_now`: its listing and the copy it starts), so a failed one is logged (the
    first round after its backoff starts it again). Every pair, not only those not ready: a
    replica last found complete answers `ready` while its recheck is still listing, and that
    recheck may find it behind. The fence is asked before each pair: it can close
    mid-round. Returns the pairs checked."""
    checked: list[tuple[str, str]] = []
    known = replicator.in_use()
    for pair in pairs:
        if not may_write():
            break
        try:
            if pair not in known and not await asyncio.to_thread(exists, *pair):
                continue  # never sent to this cloud: no job needs it there yet
            await replicator.ensure_replicated(*pair)  # starts its listing or copy
        except Exception as error:  # noqa: BLE001 - one replica's trouble must not stop the rest
            _resync_failed(pair, f"{type(error).__name__}: {error}")
            continue
        checked.append(pair)
    finals = await asyncio.gather(
        *(replicator.sync_now(*pair) for pair in checked), return_exceptions=True
    )
    for pair, final in zip(checked, finals, strict=True):
        if isinstance(final, BaseException):
            _resync_failed(pair, f"{type(final).__name__}: {final}")
        elif not final.ready:
            _resync_failed(pair, final.message or str(final.state), backed_off=True)
    return checked


def _resync_failed(pair: tuple[str, str], error: str, *, backed_off: bool = False) -> None:
    """Log one replica's failed round. A failed copy or listing is backed off by the
    replicator (its message says until when); an exception raised here (e.g. the store not
    answering `replica_exists`) is not, and is met again at the next interval."""
    dataset, cluster = pair
    log.warning(
        "replica_resync_failed",
        dataset=dataset,
        cluster=cluster,
        error=error,
        hint="tried again at the first sync.interval after the replica's backoff (the error "
        "says when)"
        if backed_off
        else "tried again at the next sync.interval",
    )
