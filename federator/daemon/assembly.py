"""The composition: the one place that knows both the loops and the concrete edges.

`assemble` builds every edge from the policy file (a Kubernetes client per cluster, the S3
stores, the replicator, the price sources, the state ConfigMaps) and the `Federation` that
decides and acts through them, and returns them as one process's `Parts`. It also builds the
write fence: only the holder of the Lease writes, the federation asks `Fence.allows_writes()`
before each pass's writes, and `--dry-run` keeps the fence shut for the whole run (see
`federator.leadership`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from federator import budgets, events, leadership, metrics, policy, store_secrets, web
from federator.core.models import Offer
from federator.daemon.connections import close_clusters, connect_clusters, read_store_secrets
from federator.daemon.data_gate import DataGate
from federator.daemon.observers import cloud_observers, onprem_observer
from federator.daemon.policy_file import PolicyHolder
from federator.daemon.telling import decision_deduplicator
from federator.federation.federation import Federation, FederationSettings
from federator.federation.ports import CloudView
from federator.kube import clients, rotation
from federator.kube.cloud import CloudCluster
from federator.kube.onprem import OnPremCluster
from federator.kube.pool_block_store import ConfigMapPoolBlockStore
from federator.kube.spend_store import ConfigMapSpendStore
from federator.prices.live import offer_builder
from federator.prices.offers import OfferBuilder
from federator.prices.preemption import PreemptionLedger
from federator.prices.preemption_store import ConfigMapPreemptionStore
from federator.storage.stores import Stores
from federator.syncing.replication import Replicator


@dataclass
class Parts:
    """Every edge and loop of one federator process, built from one policy file."""

    holder: PolicyHolder
    clusters: dict[str, clients.Cluster]
    onprem: OnPremCluster
    clouds: dict[str, CloudCluster]
    stores: Stores
    replicator: Replicator
    offers: OfferBuilder
    evidence_store: ConfigMapPreemptionStore
    federation: Federation
    fence: leadership.Fence
    dry_run: bool = False
    decisions: web.DecisionLog = field(default_factory=web.DecisionLog)
    decision_events: events.Deduplicator = field(default_factory=lambda: decision_deduplicator())
    budget_warnings: budgets.BudgetWarnings = field(default_factory=budgets.BudgetWarnings)
    evidence_at_start: PreemptionLedger = field(default_factory=PreemptionLedger)
    last_clouds: dict[str, CloudView] = field(default_factory=dict)
    watchers: dict[str, rotation.CredentialWatcher] = field(default_factory=dict)

    def writes_allowed(self) -> bool:
        """Whether this pass's actions were carried out (leader, fence open, not a dry run)."""
        return not self.dry_run and self.fence.allows_writes()

    async def close(self) -> None:
        try:
            await self.replicator.aclose()
        finally:
            await close_clusters(self.clusters.values())


async def assemble(holder: PolicyHolder, *, dry_run: bool, once: bool = False) -> Parts:
    """Every edge and loop; the clients are closed again if anything after them fails."""
    watchers: dict[str, rotation.CredentialWatcher] = {}
    connected = await connect_clusters(holder.config, watchers)
    try:
        onprem = connected[holder.config.onprem_cluster.name]
        secrets = await read_store_secrets(holder.config, onprem)
        parts = _assemble(holder, connected, secrets, dry_run=dry_run, once=once)
        parts.watchers = watchers
        return parts
    except BaseException:
        await close_clusters(connected.values())
        raise


def _assemble(
    holder: PolicyHolder,
    connected: dict[str, clients.Cluster],
    secrets: store_secrets.StoreSecrets,
    *,
    dry_run: bool,
    once: bool = False,
) -> Parts:
    config = holder.config
    onprem = onprem_observer(config, connected[config.onprem_cluster.name], lambda: holder.config)
    clouds = cloud_observers(config, connected, onprem)
    # The stores are reached as the start-time policy says (the clusters and their connections
    # are fixed at start), but dataset locations and sync settings are read from the policy in
    # force, so a reload that adds or moves a dataset needs no restart. The policy reaches them
    # from here, the one place that holds it, rather than the stores knowing the holder.
    stores = Stores(config, read_secret=secrets, policy_in_force=lambda: holder.config)
    replicator = Replicator(stores.dataset_copier)
    fence = write_fence(config, dry_run=dry_run, once=once)
    # Read at every scrape, so the gauge drops the moment the fence closes (not a pass later).
    metrics.IS_LEADER.set_function(fence.allows_writes)
    may_write: Callable[[], bool] = (lambda: False) if dry_run else fence.allows_writes
    gate = DataGate(replicator, stores, holder)

    async def offers() -> Sequence[Offer]:
        """Prices, and preemption evidence as of process start: the federation adds what this
        process sees in memory (persisted by `save_evidence`), so giving the builder only the
        start-time ledger never counts a preemption twice."""
        return parts.offers.build(time.time(), ledger=parts.evidence_at_start).offers

    federation = Federation(
        onprem=onprem,
        clouds=clouds,
        policy=lambda: holder.decision_policy,
        offers=offers,
        settings=federation_settings(config, watched_namespaces=watched_namespaces(onprem)),
        data=gate,
        sizes=replicator,
        may_write=may_write,
        size_hint=lambda name: _size_hint(holder, name),
        stored_preemption_exposure_h=lambda pool: _stored_exposure_h(parts, pool),
        spend_store=ConfigMapSpendStore(
            connected[config.onprem_cluster.name],
            namespace=config.state_namespace,
            name=f"{config.instance}-spend",
        ),
        pool_block_store=ConfigMapPoolBlockStore(
            connected[config.onprem_cluster.name],
            namespace=config.state_namespace,
            name=f"{config.instance}-pool-blocks",
        ),
    )
    parts = Parts(
        holder=holder,
        clusters=connected,
        onprem=onprem,
        clouds=clouds,
        stores=stores,
        replicator=replicator,
        offers=offer_builder(config),
        evidence_store=ConfigMapPreemptionStore(
            connected[config.onprem_cluster.name].api, namespace=config.state_namespace
        ),
        federation=federation,
        fence=fence,
        dry_run=dry_run,
    )
    return parts


def watched_namespaces(onprem: OnPremCluster) -> frozenset[str] | None:
    """The namespaces the on-prem observer watches (None: every one), fixed at start."""
    return frozenset(onprem.namespaces) or None


def federation_settings(
    config: policy.FederatorConfig, *, watched_namespaces: frozenset[str] | None = None
) -> FederationSettings:
    """The loop's knobs from the policy file; `watched_namespaces` from the on-prem observer
    (fixed at start: a reload passes on what the running settings hold)."""
    replacement = config.burst.replacement
    return FederationSettings(
        instance=config.instance,
        interval_s=config.burst.decision_interval.total_seconds(),
        lost_cluster_timeout_s={
            c.name: c.unreachable_timeout.total_seconds() for c in config.cloud_clusters
        },
        max_replacements=replacement.max_replacements,
        replace_backoff_s=replacement.backoff.total_seconds(),
        replace_max_backoff_s=replacement.max_backoff.total_seconds(),
        block_pool_for_s=replacement.block_pool_for.total_seconds(),
        start_timeout_s=(
            None if replacement.start_timeout is None else replacement.start_timeout.total_seconds()
        ),
        pull_back=config.burst.pull_back,
        pull_back_after_s=config.burst.cooldown.total_seconds(),
        min_pending_gpus=config.burst.min_pending_gpus,
        gc_grace_s=config.garbage_collection.grace_period.total_seconds(),
        burst_enabled=config.burst.policy != "never",
        preemption_prior_strength_h=config.prices.prior_weight.total_seconds() / 3600.0,
        draining_clusters=frozenset(c.name for c in config.cloud_clusters if c.draining),
        watched_namespaces=watched_namespaces,
    )


def write_fence(config: policy.FederatorConfig, *, dry_run: bool, once: bool) -> leadership.Fence:
    """Shut for a dry run; open for good without an election (`--once` runs none: the caller
    owns exclusivity, e.g. a CronJob with concurrencyPolicy Forbid, so however long the caches
    take to sync its pass may write); else opened and closed by the campaign's renewals."""
    election = config.leader_election
    return leadership.Fence(
        election.renew_deadline.total_seconds(),
        always_open=not dry_run and (once or not election.enabled),
    )


def _size_hint(holder: PolicyHolder, dataset: str) -> int | None:
    """The policy's `datasets[].size_hint`: what a dataset weighs before it was listed."""
    try:
        hint = holder.config.dataset(dataset).size_hint
    except KeyError:
        return None
    return None if hint is None else int(hint)


def _stored_exposure_h(parts: Parts, pool: tuple[str, str]) -> float:
    """The hours of exposure the offer's preemption rate already holds from saved evidence
    (exact while the offer builder applies no half-life to it; it applies none)."""
    totals = parts.evidence_at_start.totals("/".join(pool))
    if totals is None:
        return 0.0
    per_node = parts.holder.decision_policy.preemption_rate_per_node
    return totals.node_hours if per_node else totals.job_hours
