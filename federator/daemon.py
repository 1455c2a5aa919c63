"""The composition root: the one place that knows both the loops and the concrete edges.

`run()` builds every edge from the policy file (a Kubernetes client per cluster, the S3
stores, the price sources), hands them to the loops (observe on-prem, observe each cloud,
federate = decide + act + mirror + GC, price refresh, dataset re-sync every `sync.interval`,
preemption evidence persistence, config reload) and runs them in one TaskGroup until
SIGTERM/SIGINT.
After each federation pass it explains itself: one log line and a /debug/decisions record per
decision, stay and hold decisions as Events on their jobs (once per piece of news, see
`federator.events`), and budget metrics and warnings (`federator.budgets`).

Clusters are connected the way the policy file says (a kubeconfig file, the pod's service
account, or a kubeconfig in a Secret read through the on-prem client); if start-up fails
after some clients exist, they are closed before the error is reported. A kubeconfig's
credentials are watched while the daemon runs and a rotated one is adopted without a restart
(`federator.kube.rotation`); the service account's token is re-read by the client library.

Leadership: every replica observes (warm caches, metrics, health); only the holder of the
Lease writes. The federation loop asks `Fence.allows_writes()` before each pass's writes, and
the fence closes by itself when renewals stop (see `federator.leadership`). `--dry-run` keeps
the fence shut for the whole run: decisions are made, explained and served, nothing is written.

Shutdown: the first signal sets `stop`; loops finish their current step and return; the lease
is released; a second signal, or 20 s without finishing, cancels the rest (SIGTERM must end
the process within 25 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import math
import signal
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from federator import (
    budgets,
    errors,
    events,
    leadership,
    logs,
    metrics,
    onprem_policy,
    policy,
    store_secrets,
    web,
)
from federator.core.decisions import Decision
from federator.core.models import Offer
from federator.federation.federation import Federation, FederationSettings, PassReport
from federator.federation.ports import CloudView, DataReadiness, OnPremPort
from federator.kube import clients, rotation
from federator.kube.cloud import CloudCluster, CloudSettings, PoolPlacement
from federator.kube.onprem import BurstFacts, OnPremCluster
from federator.kube.pool_block_store import ConfigMapPoolBlockStore
from federator.kube.spend_store import ConfigMapSpendStore
from federator.prices import metrics as price_metrics
from federator.prices.live import offer_builder, refresh_all
from federator.prices.offers import OfferBuilder
from federator.prices.preemption import PreemptionLedger
from federator.prices.preemption_store import ConfigMapPreemptionStore
from federator.storage.retrying import RetriesStopped
from federator.storage.stores import ReplicaDefinition, Stores, replica_definition
from federator.syncing import modelsync
from federator.syncing.replication import ReplicaState, Replicator

log = structlog.get_logger(__name__)

SHUTDOWN_GRACE_S = 20.0
EVIDENCE_SAVE_S = 60.0


class PolicyHolder:
    """The policy in force; a reload swaps it only when the new file is valid."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.config = policy.load_policy(path)
        self.decision_policy = policy.to_decision_policy(self.config)
        self._mtime = _mtime(path)
        # The start-up load is the first success: "when the policy in force was loaded".
        metrics.CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP_SECONDS.set(time.time())

    def changed_on_disk(self) -> bool:
        return _mtime(self.path) != self._mtime

    def reload(self) -> bool:
        """Load the file again; keep the old policy (and count a failure) if it is invalid."""
        self._mtime = _mtime(self.path)
        try:
            config = policy.load_policy(self.path)
            decision_policy = policy.to_decision_policy(config)
        except policy.PolicyFileError as error:
            metrics.CONFIG_RELOAD_FAILURES.inc()
            log.error("config_reload_rejected", path=str(self.path), errors=str(error))
            return False
        self.config, self.decision_policy = config, decision_policy
        metrics.CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP_SECONDS.set(time.time())
        log.info("config_reloaded", path=str(self.path))
        return True


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return -1.0


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


async def connect_clusters(
    config: policy.FederatorConfig,
    watchers: dict[str, rotation.CredentialWatcher] | None = None,
) -> dict[str, clients.Cluster]:
    """A client per cluster, the on-prem one first: a `kubeconfig_secret` is read through it.

    With `watchers`, every cluster connected from a kubeconfig (a file or a Secret) gets a
    `CredentialWatcher` in it, which the daemon runs to follow credential rotations. If any
    cluster cannot be connected, the ones already connected are closed before the error
    propagates (no "Unclosed client session" on a start-up mistake).
    """
    connected: dict[str, clients.Cluster] = {}
    onprem = config.onprem_cluster.name
    ordered = sorted(config.clusters, key=lambda c: c.name != onprem)
    try:
        for cluster in ordered:
            name = cluster.name
            source = None if watchers is None else kubeconfig_source(config, name, connected)
            loaded = None if source is None else await rotation.baseline(source)
            connected[name] = await connect_cluster(config, name, connected.get(onprem))
            if source is not None and watchers is not None:
                watchers[name] = rotation.CredentialWatcher(connected[name], source, loaded=loaded)
    except BaseException:
        await close_clusters(connected.values())
        raise
    return connected


def _not_a_file(path: Path) -> str:
    """Why `path` cannot be read as a file ("" if it can be tried); one stat, at start-up."""
    if path.is_file():
        return ""
    return "is not a file" if path.exists() else "does not exist"


async def connect_cluster(
    config: policy.FederatorConfig, name: str, onprem: clients.Cluster | None
) -> clients.Cluster:
    """One cluster, the way its `connection` says: kubeconfig file, service account, Secret."""
    access = policy.cluster_access(config, name)
    where = f"clusters.{name}.connection"
    if access.kubeconfig is not None:
        if problem := _not_a_file(Path(access.kubeconfig)):  # the client: "expected key contexts"
            raise errors.UserError(f"{where}.kubeconfig: {access.kubeconfig} {problem}")
        return await clients.connect(access.kubeconfig, access.context or name, name=name)
    if access.in_cluster:
        with contextlib.suppress(OSError):  # unreadable: connect_in_cluster says so clearly
            token = (clients.SERVICE_ACCOUNT_DIR / "token").read_text().strip()
            logs.register_secrets([token] if token else [])
        return await clients.connect_in_cluster(name=name)
    assert access.kubeconfig_secret is not None  # the policy file allows exactly one way
    namespace, secret, key = access.kubeconfig_secret
    namespace = namespace or config.state_namespace
    source = f"{where}.kubeconfig_secret (Secret {namespace}/{secret}, key {key!r})"
    if onprem is None:
        raise errors.UserError(
            f"{source}: the on-prem cluster's own connection cannot come from a Secret (it is "
            "read from the on-prem cluster); use in_cluster: true or a kubeconfig file"
        )
    try:
        data = await clients.read_secret(onprem, namespace, secret)
    except errors.FederatorError as e:
        raise errors.UserError(f"{source}: cannot read it from {onprem.name}: {e}") from None
    if key not in data:
        keys = ", ".join(sorted(data)) or "none"
        raise errors.UserError(f"{source}: the Secret has no key {key!r} (keys: {keys})")
    logs.register_secrets(_kubeconfig_text_secrets(data[key]))
    return await clients.connect_kubeconfig_text(
        data[key], access.context, name=name, source=source
    )


def kubeconfig_source(
    config: policy.FederatorConfig, name: str, connected: dict[str, clients.Cluster]
) -> rotation.KubeconfigSource | None:
    """Where `name`'s kubeconfig is read again from while running; None for the service
    account (kubernetes-asyncio re-reads its token file by itself)."""
    access = policy.cluster_access(config, name)
    if access.kubeconfig is not None:
        return rotation.KubeconfigFile(access.kubeconfig, access.context or name)
    onprem = connected.get(config.onprem_cluster.name)
    if access.kubeconfig_secret is None or onprem is None:
        return None
    namespace, secret, key = access.kubeconfig_secret
    return rotation.KubeconfigInSecret(
        functools.partial(clients.read_secret, onprem),
        namespace or config.state_namespace,
        secret,
        key,
        access.context,
    )


async def close_clusters(clusters: Iterable[clients.Cluster]) -> None:
    for cluster in clusters:
        with contextlib.suppress(Exception):  # closing is best effort; the error that led
            await cluster.close()  # here, if any, is the one worth reporting


def onprem_observer(
    config: policy.FederatorConfig,
    cluster: clients.Cluster,
    config_of: Callable[[], policy.FederatorConfig] | None = None,
) -> OnPremCluster:
    """Watch the namespaces the policy's queues name (all of them if a ClusterQueue is watched).

    The watched namespaces are fixed at start; tenants, burst rules and default runtimes are
    read from `config_of()` at every snapshot, so a reloaded policy applies to them at once.
    """
    watches_all = any(q.kind == "ClusterQueue" for q in config.queues)
    namespaces = () if watches_all else tuple(q.namespace or q.name for q in config.queues)
    resident = tuple(q.namespace or q.name for q in config.queues if q.burst == "never")
    current = config_of or (lambda: config)
    return onprem_policy.PolicyOnPremCluster(
        cluster,
        config_of=current,
        namespaces=namespaces,
        resident_namespaces=resident,
        default_runtime_s=config.cost.default_runtime.total_seconds(),
        tenant_of=lambda namespace: _tenant_of(current(), namespace),
        eligible=lambda facts: _may_burst(current(), facts),
    )


def _tenant_of(config: policy.FederatorConfig, namespace: str) -> str:
    """Budgets and tenant rules are keyed by tenant name; a namespace with none is its own."""
    tenant = config.tenant_of_namespace(namespace)
    return tenant.name if tenant is not None else namespace


def _may_burst(config: policy.FederatorConfig, facts: BurstFacts) -> bool:
    """The policy file's opt-out label, burst rules, queue modes and tenants, in that order."""
    from federator.policy.eligibility import JobFacts, may_burst

    verdict = may_burst(
        config,
        JobFacts(
            namespace=facts.namespace,
            queue=facts.queue,
            cluster_queue=facts.cluster_queue,
            priority_class=facts.priority_class,
            labels=facts.labels,
            annotations=facts.annotations,
        ),
    )
    return verdict.allowed


def cloud_observers(
    config: policy.FederatorConfig, connected: dict[str, clients.Cluster], onprem: OnPremCluster
) -> dict[str, CloudCluster]:
    clouds: dict[str, CloudCluster] = {}
    onprem_name = config.onprem_cluster.name
    for cluster in config.cloud_clusters:
        settings = CloudSettings(
            instance=config.instance,
            source_cluster=onprem_name,
            rewrites=_location_rewrites(config, onprem_name, cluster.name, staging_from=config),
            pools={pool.name: PoolPlacement(node_selector=pool.selector) for pool in cluster.pools},
            copy_config_maps=config.burst.copy_config_maps,
            copy_secrets=config.burst.copy_secrets,
        )
        clouds[cluster.name] = CloudCluster(
            connected[cluster.name], source=onprem, settings=settings
        )
    return clouds


def _location_rewrites(
    config: policy.FederatorConfig,
    onprem: str,
    cloud: str,
    *,
    staging_from: policy.FederatorConfig,
) -> tuple[tuple[str, str], ...]:
    """Dataset and registry URIs as the job knows them on-prem, and as the cloud's replica:
    the datasets of `config`, the staging area of `staging_from` (the policy the stores were
    built from: the model registry and its staging areas stay as they were at start)."""
    pairs: list[tuple[str, str]] = []
    for dataset in config.datasets:
        with contextlib.suppress(Exception):  # a dataset with no replica on this cloud
            pairs.append(
                (policy.dataset_uri(config, dataset.name, onprem),
                 policy.dataset_uri(config, dataset.name, cloud))
            )  # fmt: skip
    if staging_from.registry is not None:
        with contextlib.suppress(Exception):
            pairs.append(
                (policy.staging_uri(staging_from, onprem), policy.staging_uri(staging_from, cloud))
            )
    return tuple(pairs)


def federation_settings(config: policy.FederatorConfig) -> FederationSettings:
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
    )


class DataGate:
    """The federation's view of the data: replicas out before a job starts, outputs back after.

    Datasets go through the `Replicator` (copies run in the background; a job stays gated until
    its replica is complete). Outputs come back by syncing the cloud's registry staging area to
    the on-prem registry; without a registry section there is nothing to bring back.
    """

    def __init__(self, replicator: Replicator, stores: Stores, holder: PolicyHolder) -> None:
        self._replicator = replicator
        self._stores = stores
        self._holder = holder

    async def ensure_replicated(self, dataset: str, cluster: str) -> DataReadiness:
        """Start (or check) the copy. The job may start once the replica is complete, or
        at once when the dataset has `sync_before_start: false` (the copy then runs beside the
        job); while the replica's last copy or listing failed, its status message is the
        problem (it says when the replica is tried again)."""
        status = await self._replicator.ensure_replicated(dataset, cluster)
        failed = status.state is ReplicaState.FAILED
        return DataReadiness(
            may_start=status.ready or not self._waits_for(dataset),
            problem=(status.message or "the last copy failed") if failed else "",
        )

    def _waits_for(self, dataset: str) -> bool:
        try:
            return self._holder.config.dataset(dataset).sync_before_start
        except KeyError:
            return True  # a dataset the policy does not know: the safe way is to wait

    async def outputs_synced(self, job_key: str, cluster: str) -> bool:
        if self._holder.config.registry is None:
            return True
        from federator.storage import registry as registry_edge
        from federator.syncing import manifests

        model = manifests.checkpoint_model(job_key)
        source, target = self._stores.staging(cluster), self._stores.registry()
        report = await asyncio.to_thread(
            registry_edge.sync_back, source, target, only=lambda name: name == model
        )
        # A shutdown that cut the round short left versions in the cloud: not home yet.
        return not report.failures and not report.left_for_next_round


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


async def read_store_secrets(
    config: policy.FederatorConfig, onprem: clients.Cluster
) -> store_secrets.StoreSecrets:
    """The Secrets object stores take their keys from (`credentials.kubernetes_secret`), read
    at start through the on-prem client and checked (a missing Secret or key stops the start
    with the field named). The stores re-read them through the same client when their keys
    refresh, so a rotated Secret is used without a restart (`federator.store_secrets`)."""

    secrets = store_secrets.StoreSecrets(
        functools.partial(clients.read_secret, onprem),
        asyncio.get_running_loop(),
        default_namespace=config.state_namespace,
    )
    for cluster in config.clusters:
        store = cluster.object_store
        ref = store.credentials.kubernetes_secret if store is not None else None
        if ref is None:
            continue
        namespace = ref.namespace or config.state_namespace
        where = f"clusters.{cluster.name}.object_store.credentials.kubernetes_secret"
        try:
            await secrets.load(namespace, ref.name)
        except errors.FederatorError as e:
            raise errors.UserError(
                f"{where}: cannot read Secret {namespace}/{ref.name} from {onprem.name}: {e}"
            ) from None
        # a missing key fails here, at start, with the field named, not at the first copy
        policy.store_access(config, cluster.name, read_secret=secrets)
    return secrets


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
        settings=federation_settings(config),
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


def write_fence(config: policy.FederatorConfig, *, dry_run: bool, once: bool) -> leadership.Fence:
    """Shut for a dry run; open for good without an election (`--once` runs none: the caller
    owns exclusivity, e.g. a CronJob with concurrencyPolicy Forbid, so however long the caches
    take to sync its pass may write); else opened and closed by the campaign's renewals."""
    election = config.leader_election
    return leadership.Fence(
        election.renew_deadline.total_seconds(),
        always_open=not dry_run and (once or not election.enabled),
    )


def runs_election(config: policy.FederatorConfig, *, dry_run: bool) -> bool:
    """Whether the serving daemon campaigns for the lease (a dry run writes nothing: it does
    not, and must not wait to learn who leads to be Ready)."""
    return config.leader_election.enabled and not dry_run


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


def record_decisions(parts: Parts, report: PassReport) -> None:
    """Feed /debug/decisions and the decision counters; one canonical log line per decision."""
    acted = parts.writes_allowed()
    for decision in report.decisions:
        if acted:  # every replica decides; one (the leader) counts, or dashboards sum twice
            metrics.DECISIONS.labels(decision=str(decision.kind)).inc()
        parts.decisions.record(web.DecisionRecord.of(decision, decided_at=report.now, acted=acted))
        log.info(
            "decision",
            job=decision.job_key,
            decision=str(decision.kind),
            cluster=decision.cluster,
            pool=decision.pool,
            expected_cost_usd=_finite(decision.expected_cost_usd, 2),
            expected_wait_s=_finite(decision.expected_wait_s, 0),
            reason=decision.reason,
        )


# Stay and hold decisions are told on the job as Events; a burst is told by the placement's
# own Event ("Bursted", posted by the federation when the copy exists), so it is only noted.
DECISION_EVENT_KINDS = frozenset({"stay", "hold"})
EVENT_WAIT_FACTOR = 4.0  # a wait estimate 4x longer or shorter than the one last told is news
EVENT_REPEAT_S = 45 * 60  # below the apiserver's default one-hour Event TTL
EVENT_POST_CONCURRENCY = 8


def decision_deduplicator() -> events.Deduplicator:
    return events.Deduplicator(
        capacity=100_000, wait_factor=EVENT_WAIT_FACTOR, repeat_after_s=EVENT_REPEAT_S
    )


async def tell_decisions(parts: Parts, report: PassReport) -> None:
    """Only a pass whose actions were carried out posts Events (an Event is a write)."""
    if parts.writes_allowed():
        await post_decision_events(
            parts.onprem, parts.decision_events, report, may_write=parts.writes_allowed
        )


async def post_decision_events(
    onprem: OnPremPort,
    told: events.Deduplicator,
    report: PassReport,
    *,
    may_write: Callable[[], bool] = lambda: True,
) -> int:
    """Post each stay or hold decision on its on-prem Job, when it is news (see `events`).

    A failed post, or one the write fence stopped (asked right before each post: the fence
    can close while they run), is forgotten by the deduplicator, so a later pass tries again.
    Returns how many Events were posted.
    """
    news: list[tuple[str, events.EventText]] = []
    if not report.skipped:  # a pass that decided: the jobs it did not decide are gone
        told.retain_only(decision.job_key for decision in report.decisions)
    for decision in report.decisions:
        is_news = told.should_post(decision.job_key, events.decision_news(decision), now=report.now)
        if is_news and events.kind_of(decision) in DECISION_EVENT_KINDS:
            news.append((decision.job_key, events.for_decision(decision)))
    if not news:
        return 0
    jobs = {job.key: job for job in (await onprem.snapshot(report.now)).jobs}
    gate = asyncio.Semaphore(EVENT_POST_CONCURRENCY)

    async def post(key: str, text: events.EventText) -> bool:
        job = jobs.get(key)
        if job is None:  # gone since the pass decided: nothing to tell
            told.forget(key)
            return False
        async with gate:
            if not may_write():
                told.forget(key)
                return False
            try:
                await onprem.event(
                    job, reason=text.reason, message=text.message, warning=text.warning
                )
            except errors.FederatorError as e:
                told.forget(key)
                log.warning("decision_event_not_posted", job=key, error=str(e))
                return False
        return True

    posted = await asyncio.gather(*(post(key, text) for key, text in news))
    return sum(posted)


async def watch_budgets(parts: Parts, report: PassReport) -> None:
    """Metrics for every cap; a warning (log, counter, Event) when spend crosses the line."""
    if report.spend is None:
        return
    config = parts.holder.config
    warn_at = config.budgets.warn_at_fraction
    crossed = parts.budget_warnings.observe(budgets.caps_of(config, report.spend), warn_at)
    if not crossed or not parts.writes_allowed():
        return
    onprem = parts.clusters[config.onprem_cluster.name]
    stamp = datetime.fromtimestamp(report.now, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for cap in crossed:
        text = events.EventText("FederatorBudgetWarning", cap.describe(warn_at), warning=True)
        body = events.namespace_event(config.state_namespace, text, timestamp=stamp)
        try:
            await onprem.request(
                "POST", f"/api/v1/namespaces/{config.state_namespace}/events", body=body
            )
        except errors.FederatorError as e:
            log.warning("budget_event_not_posted", scope=cap.scope, error=str(e))


def _finite(value: float, digits: int) -> float | None:
    """Rounded for the log line; None where the model says 'never' (an infinite wait)."""
    return round(value, digits) if math.isfinite(value) else None


# ---- the loops the composition root adds around the federation ------------------------------


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
    `follow_reloaded_datasets` says so once per reload.
    """
    while await _sleep(parts.holder.config.sync.interval.total_seconds(), stop):
        if not parts.writes_allowed():
            continue
        pairs = replica_pairs_with_stores(parts.holder.config, parts.stores)
        exists = functools.partial(replica_exists, parts.stores)
        await resync_known_replicas(
            parts.replicator, pairs, exists=exists, may_write=parts.writes_allowed
        )
        parts.replicator.publish_metrics()


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
    cloud copies are built (pool selectors, copied ConfigMaps and Secrets)."""
    parts.federation.settings = federation_settings(parts.holder.config)
    initialise_metrics(parts.holder.config)  # a reload may add caps and tenants


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
        rewrites = _location_rewrites(after, onprem, name, staging_from=start)
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


def initialise_metrics(config: policy.FederatorConfig) -> None:
    """Every counter series the policy file implies, at 0 (see `metrics.initialise`)."""
    metrics.initialise(
        cloud_clusters=[c.name for c in config.cloud_clusters],
        budget_scopes=budgets.scopes_of(config),
        replica_pairs=replica_pairs(config),
    )
    price_metrics.initialise(price_metrics.live_sources(config))


async def _sleep(seconds: float, stop: asyncio.Event) -> bool:
    """Sleep unless stopped earlier; True means carry on."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    return not stop.is_set()


def readiness(parts: Parts, election_enabled: bool) -> web.Readiness:
    onprem = parts.clusters[parts.holder.config.onprem_cluster.name]
    return web.Readiness(
        config_loaded=True,
        onprem_reachable=onprem.health.up and parts.onprem.synced,
        leadership_known=parts.fence.leadership_known or not election_enabled,
        is_leader=parts.fence.is_leader,
        detail=onprem.health.last_error or "",
    )


# ---- entry points ---------------------------------------------------------------------------


async def run(
    config_path: Path, *, dry_run: bool = False, once: bool = False, log_level: str = "info"
) -> int:
    logs.configure(level=log_level.upper())
    holder = PolicyHolder(config_path)
    config = holder.config
    logs.register_secrets(_secrets_of(holder))
    initialise_metrics(config)
    warn_about_insecure_stores(config)
    parts = await assemble(holder, dry_run=dry_run, once=once)
    try:
        parts.evidence_at_start = await load_evidence(parts)
        if once:
            return await _run_once(parts)
        return await _serve(parts, dry_run=dry_run)
    finally:
        await parts.close()


async def load_evidence(parts: Parts) -> PreemptionLedger:
    """The saved preemption evidence; without it the priors alone are used, loudly (the
    error may say how to repair the ConfigMap)."""
    try:
        return await parts.evidence_store.load()
    except Exception as error:  # noqa: BLE001 - any failure means "start from the priors"
        # The error in one line, not a traceback: the usual cause is an on-prem cluster that
        # does not answer, which the cluster's own log line already explains.
        log.warning(
            "preemption_evidence_not_loaded",
            error=f"{type(error).__name__}: {error}",
            hint="spot pools start from their prior rates until evidence is saved again",
        )
        return parts.evidence_at_start


def warn_about_insecure_stores(config: policy.FederatorConfig) -> None:
    """A store with TLS verification off is allowed only loudly (the policy says so explicitly)."""
    for cluster in config.clusters:
        store = cluster.object_store
        if store is not None and not store.verify_tls:
            log.warning(
                "tls_verification_disabled",
                cluster=cluster.name,
                source=f"clusters.{cluster.name}.object_store.verify_tls: false",
                hint="trust the store's CA instead; credentials and data cross this link",
            )


def _secrets_of(holder: PolicyHolder) -> list[str]:
    """Every credential the process will hold, so the log redactor can mask it by value too."""
    config = holder.config
    values: list[str] = []
    for cluster in config.clusters:
        if cluster.object_store is not None:
            with contextlib.suppress(Exception):  # unresolvable now: it fails loudly later
                keys = policy.store_access(config, cluster.name).credentials
                if keys is not None:
                    values += [keys.secret_access_key, keys.session_token or ""]
        kubeconfig = policy.cluster_access(config, cluster.name).kubeconfig
        if kubeconfig is not None:
            values += _kubeconfig_secrets(kubeconfig)
    return [v for v in values if v]


def _kubeconfig_secrets(path: Path) -> list[str]:
    try:
        text = path.read_text()
    except OSError:
        return []
    return _kubeconfig_text_secrets(text)


def _kubeconfig_text_secrets(text: str) -> list[str]:
    import yaml

    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError:
        return []
    users = loaded.get("users", []) if isinstance(loaded, dict) else []
    fields = ("client-key-data", "token", "password")
    return [
        str(user["user"][field])
        for user in users
        if isinstance(user, dict) and isinstance(user.get("user"), dict)
        for field in fields
        if user["user"].get(field)
    ]


async def _run_once(parts: Parts) -> int:
    """One full pass (for cron and tests): wait for the caches, then observe, decide, act."""
    async with _observing(parts):
        await _wait_synced(parts)
        report = await parts.federation.run_once(time.time())
        record_decisions(parts, report)
        await tell_decisions(parts, report)
        await watch_budgets(parts, report)
    return 1 if report.failures else 0


async def _wait_synced(parts: Parts, timeout_s: float = 60.0) -> None:
    """Wait for the on-prem caches. A cluster that does not answer in time is a transient
    condition, not a mistake in the command: the CLI exits 1 with its retry hint (a CronJob's
    next run may well succeed); a kubeconfig that cannot be used failed earlier, at connect."""
    deadline = time.monotonic() + timeout_s
    while not parts.onprem.synced:
        if time.monotonic() > deadline:
            cluster = parts.onprem.cluster
            why = f": {cluster.health.last_error}" if cluster.health.last_error else ""
            raise errors.ClusterUnavailable(
                cluster.name,
                f"the on-prem cluster's caches did not sync within {timeout_s:.0f} s{why}",
            )
        await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def _observing(parts: Parts) -> AsyncIterator[None]:
    """Keep every cluster's caches, and its credentials, fresh while the block runs."""
    observers = [asyncio.create_task(parts.onprem.run(), name="observe-onprem")]
    observers += [
        asyncio.create_task(cloud.run(), name=f"observe-{name}")
        for name, cloud in parts.clouds.items()
    ]
    observers += [
        asyncio.create_task(watcher.run(), name=f"credentials-{name}")
        for name, watcher in parts.watchers.items()
    ]
    try:
        yield
    finally:
        for task in observers:
            task.cancel()
        await asyncio.gather(*observers, return_exceptions=True)


async def _serve(parts: Parts, *, dry_run: bool) -> int:
    config = parts.holder.config
    stop, hup = asyncio.Event(), asyncio.Event()
    _install_signals(stop, hup)
    election = config.leader_election
    settings = leadership.ElectionSettings(
        lease_name=election.lease_name,
        namespace=config.state_namespace,
        identity=_identity(config.instance),
        lease_duration_s=election.lease_duration.total_seconds(),
        renew_deadline_s=election.renew_deadline.total_seconds(),
        retry_period_s=election.retry_period.total_seconds(),
    )
    onprem_api = parts.clusters[config.onprem_cluster.name].api
    elects = runs_election(config, dry_run=dry_run)
    status = lambda: readiness(parts, elects)  # noqa: E731 - a one-line callback
    server = config.server
    async with web.serving(server.bind_address, server.port, status, parts.decisions) as bound:
        log.info("serving", address=f"http://{bound[0]}:{bound[1]}", dry_run=dry_run)
        async with _observing(parts):
            tasks = [
                asyncio.create_task(federate(parts, stop), name="federate"),
                asyncio.create_task(refresh_prices(parts, stop), name="prices"),
                asyncio.create_task(save_evidence(parts, stop), name="evidence"),
                asyncio.create_task(watch_config(parts, stop, hup), name="config"),
            ]
            if config.registry is not None and not dry_run:
                tasks.append(asyncio.create_task(sync_models_back(parts, stop), name="models"))
            if not dry_run:  # even with no dataset yet: a reload may add the first one
                tasks.append(asyncio.create_task(resync_replicas(parts, stop), name="replicas"))
            if elects:
                tasks.append(asyncio.create_task(
                    leadership.campaign(onprem_api, settings, fence=parts.fence,
                                        lead=_lead_until(stop), stop=stop),
                    name="leader-election",
                ))  # fmt: skip
            await stop.wait()
            log.info("shutting_down", grace_s=SHUTDOWN_GRACE_S)
            parts.fence.mark_lost(stepping_down=True)  # no new writes from here on
            parts.stores.stop_transfers()  # a model blob in flight stops at its next part
            _, late = await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE_S)
            for task in late:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if elects:
                await leadership.release(onprem_api, settings)
    return 0


def _lead_until(stop: asyncio.Event) -> Callable[[], Coroutine[Any, Any, None]]:
    """While leading there is nothing extra to run: the fence opens the federation's writes."""

    async def lead() -> None:
        await stop.wait()

    return lead


def _identity(instance: str) -> str:
    import os
    import socket

    return f"{instance}-{os.environ.get('POD_NAME') or socket.gethostname()}-{os.getpid()}"


def _install_signals(stop: asyncio.Event, hup: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()

    def first_then_force(sig: signal.Signals) -> None:
        if stop.is_set():
            raise SystemExit(128 + sig.value)  # a second signal: stop waiting for the loops
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, first_then_force, sig)
    loop.add_signal_handler(signal.SIGHUP, hup.set)


async def plan(config_path: Path) -> tuple[list[Decision], PassReport]:
    """One pass against the live clusters that decides and explains, writing nothing."""
    holder = PolicyHolder(config_path)
    logs.configure(level="WARNING")
    parts = await assemble(holder, dry_run=True)
    try:
        async with _observing(parts):
            await _wait_synced(parts)
            await asyncio.sleep(1.0)  # let the cloud caches fill too
            report = await parts.federation.run_once(time.time())
        return list(report.decisions), report
    finally:
        await parts.close()
