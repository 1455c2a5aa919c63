"""What each cluster's observer watches, and how a job's place in the policy is read.

The on-prem observer watches the namespaces the policy's queues name and asks the policy in
force, at every snapshot, for a job's tenant and whether it may burst; each cloud observer is
told how to build a cloud copy (pool selectors, copied ConfigMaps and Secrets) and how the
job's data locations are rewritten for that cloud (`location_rewrites`, which a reload
recomputes).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from federator import onprem_policy, policy
from federator.kube import clients
from federator.kube.cloud import CloudCluster, CloudSettings, PoolPlacement
from federator.kube.onprem import BurstFacts, OnPremCluster


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
            rewrites=location_rewrites(config, onprem_name, cluster.name, staging_from=config),
            pools={pool.name: PoolPlacement(node_selector=pool.selector) for pool in cluster.pools},
            copy_config_maps=config.burst.copy_config_maps,
            copy_secrets=config.burst.copy_secrets,
        )
        clouds[cluster.name] = CloudCluster(
            connected[cluster.name], source=onprem, settings=settings
        )
    return clouds


def location_rewrites(
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
