"""Where each dataset and each model staging area lives on each cluster's store.

A dataset's replica location is the one written in `datasets[].replicas`, or derived from the
cluster store's `datasets_uri`; the sync engine and the federation loop both ask here, so they
can never disagree about where a replica is.
"""

from __future__ import annotations

from federator.errors import UserError
from federator.policy.config import FederatorConfig, resident_datasets


def _join(prefix: str, name: str) -> str:
    return f"{prefix.rstrip('/')}/{name}/"


def dataset_uri(config: FederatorConfig, dataset_name: str, cluster_name: str) -> str:
    """The `s3://` location of `dataset_name` on `cluster_name`'s store (the source itself for
    the on-prem cluster)."""
    try:
        dataset = config.dataset(dataset_name)
        cluster = config.cluster(cluster_name)
    except KeyError as error:
        raise UserError(
            f"unknown dataset or cluster {error.args[0]!r} in the policy file"
        ) from None
    if cluster.role == "onprem":
        return dataset.source
    if dataset.name in resident_datasets(config):
        raise UserError(f"dataset {dataset.name!r} must stay on-prem (residency rule)")
    if cluster.name in dataset.replicas:
        return dataset.replicas[cluster.name]
    store = cluster.object_store
    if store is None or store.datasets_uri is None:
        raise UserError(
            f"no location for dataset {dataset.name!r} on cluster {cluster.name!r}: "
            f"set datasets[].replicas.{cluster.name} or its object_store.datasets_uri"
        )
    return _join(store.datasets_uri, dataset.name)


def staging_uri(config: FederatorConfig, cluster_name: str) -> str:
    """Where jobs on cloud `cluster_name` write checkpoints and models for the registry."""
    registry = config.registry
    if registry is None:
        raise UserError("the policy file has no `registry` section")
    if cluster_name in registry.staging:
        return registry.staging[cluster_name]
    store = config.cluster(cluster_name).object_store
    if store is None or store.models_uri is None:
        raise UserError(
            f"no staging location for cluster {cluster_name!r}: set "
            f"registry.staging.{cluster_name} or its object_store.models_uri"
        )
    return _join(store.models_uri, "staging")
