"""The whole policy file: `FederatorConfig`, and the checks that span its sections.

Each section validates itself; what only the whole file can tell — a tenant naming a cluster
that does not exist, two clusters with one name, a residency rule for an unknown dataset — is
checked here by `reference_problems`, which returns each problem with the path of the field
to fix, so the loader can point at the exact line.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, model_validator

from federator.policy.base import KubeName, Name, NotBoolean, Section
from federator.policy.bursting import Burst
from federator.policy.clusters import Cluster
from federator.policy.costs import Budgets, Cost, Prices
from federator.policy.data import Dataset, Registry, Sync
from federator.policy.errors import format_path
from federator.policy.operations import GarbageCollection, LeaderElection, Server
from federator.policy.queues import BurstRule, Queue
from federator.policy.tenancy import ResidencyRule, Tenant
from federator.policy.units import format_duration

PathKey = tuple[str | int, ...]
DEFER_REFERENCES_CONTEXT = "defer_reference_checks"


@dataclass(frozen=True, slots=True)
class Problem:
    """A cross-reference problem: the path of the field to fix and what is wrong."""

    path: PathKey
    message: str


class FederatorConfig(Section):
    """federator's policy file: the clusters it connects, the queues it watches, and the
    rules, prices and budgets by which it moves jobs to the cloud."""

    version: Annotated[Literal[1], NotBoolean] = 1
    """Version of the file format; always 1 for now."""

    instance: Name = "federator"
    """Name of this federator installation; written as `federator.io/origin` on every object
    it creates, so two installations never touch each other's objects."""

    state_namespace: KubeName = "federator"
    """Namespace on the on-prem cluster where federator keeps its state (Lease, placement
    records, preemption history)."""

    clusters: tuple[Cluster, ...] = Field(min_length=1)
    """Every cluster federator connects to: the on-prem one and the clouds it may burst to."""

    queues: tuple[Queue, ...] = Field(min_length=1)
    """On-prem queues whose pending jobs federator may move."""

    burst_rules: tuple[BurstRule, ...] = ()
    """Rules that allow or deny bursting for matching jobs; the first match wins."""

    burst: Burst = Field(default_factory=Burst)
    """When and how eagerly federator bursts, and the global caps."""

    cost: Cost = Field(default_factory=Cost)
    """Inputs of the cost model: value of waiting, runtime and checkpoint defaults."""

    prices: Prices = Field(default_factory=Prices)
    """Freshness of cloud prices and priors of preemption rates."""

    budgets: Budgets = Field(default_factory=Budgets)
    """Global caps on cloud spend per hour and per day."""

    tenants: tuple[Tenant, ...] = ()
    """Teams, their namespaces, where they may burst, and their monthly budgets."""

    residency: tuple[ResidencyRule, ...] = ()
    """Datasets that must stay on-prem (or in listed places), with every job that reads them."""

    datasets: tuple[Dataset, ...] = ()
    """Datasets jobs read, with their on-prem source and cloud replica locations."""

    registry: Registry | None = None
    """The on-prem model registry and the clouds' staging areas; no model sync when omitted."""

    sync: Sync = Field(default_factory=Sync)
    """How datasets and models are copied between stores: concurrency, verification, deletes."""

    server: Server = Field(default_factory=Server)
    """The metrics and health endpoint."""

    leader_election: LeaderElection = Field(default_factory=LeaderElection)
    """Leader election between replicas of the daemon."""

    garbage_collection: GarbageCollection = Field(default_factory=GarbageCollection)
    """Cleanup of finished and orphaned objects in the clouds."""

    @model_validator(mode="after")
    def _references_resolve(self, info: ValidationInfo) -> FederatorConfig:
        if (info.context or {}).get(DEFER_REFERENCES_CONTEXT):
            return self  # the loader runs them itself, to report each one at its line
        problems = reference_problems(self)
        if problems:
            raise ValueError("; ".join(f"{_dotted(p.path)}: {p.message}" for p in problems))
        return self

    def cluster(self, name: str) -> Cluster:
        """The cluster called `name`; `KeyError` if there is none."""
        for cluster in self.clusters:
            if cluster.name == name:
                return cluster
        raise KeyError(name)

    @property
    def onprem_clusters(self) -> tuple[Cluster, ...]:
        return tuple(c for c in self.clusters if c.role == "onprem")

    @property
    def onprem_cluster(self) -> Cluster:
        """The on-prem cluster (the first one, when a file declares several)."""
        return self.onprem_clusters[0]

    @property
    def cloud_clusters(self) -> tuple[Cluster, ...]:
        return tuple(c for c in self.clusters if c.role == "cloud")

    def dataset(self, name: str) -> Dataset:
        """The dataset called `name`; `KeyError` if there is none."""
        for dataset in self.datasets:
            if dataset.name == name:
                return dataset
        raise KeyError(name)

    def tenant_of_namespace(self, namespace: str) -> Tenant | None:
        """The tenant owning `namespace`, or None if no tenant lists it."""
        for tenant in self.tenants:
            if namespace in tenant.namespaces:
                return tenant
        return None


def _dotted(path: PathKey) -> str:
    return ".".join(str(part) for part in path) or "(top level)"


def reference_problems(
    config: FederatorConfig, valid_sections: frozenset[str] | None = None
) -> list[Problem]:
    """Every reference in `config` that does not resolve, with the path of the field to fix.

    With `valid_sections`, only the checks whose sections are all among them run: the loader
    uses this to report reference problems alongside field errors in other sections."""
    return [
        problem
        for check, sections in _CHECKS
        if valid_sections is None or sections <= valid_sections
        for problem in check(config)
    ]


def _duplicate_names(path: PathKey, names: list[str], what: str) -> Iterator[Problem]:
    seen: set[str] = set()
    for index, name in enumerate(names):
        if name in seen:
            yield Problem((*path, index, "name"), f"another {what} is already named {name!r}")
        seen.add(name)


def _cloud_name_problems(config: FederatorConfig, path: PathKey, name: str) -> Iterator[Problem]:
    names = {c.name: c for c in config.clusters}
    if len(names) < len(config.clusters):
        # Two clusters share a name (reported at the second one). Which name the file meant is
        # anyone's guess, most often the one a reference here is missing, so these checks wait.
        return
    if name not in names:
        clouds = ", ".join(c.name for c in config.cloud_clusters) or "none"
        yield Problem(path, f"no cluster is named {name!r} (cloud clusters: {clouds})")
    elif names[name].role != "cloud":
        yield Problem(path, f"{name!r} is an on-prem cluster; only cloud clusters belong here")


def _cluster_problems(config: FederatorConfig) -> Iterator[Problem]:
    if not config.onprem_clusters:
        yield Problem(
            ("clusters",),
            "no cluster has `role: onprem`; federator needs the "
            "on-prem cluster whose queue it watches",
        )
    yield from _duplicate_names(("clusters",), [c.name for c in config.clusters], "cluster")
    for index, cluster in enumerate(config.clusters):
        path: PathKey = ("clusters", index, "pools")
        yield from _duplicate_names(path, [p.name for p in cluster.pools], "pool of this cluster")


def _queue_problems(config: FederatorConfig) -> Iterator[Problem]:
    onprem = [c.name for c in config.onprem_clusters]
    seen: set[tuple[str | None, str, str | None, str]] = set()
    for index, queue in enumerate(config.queues):
        if queue.cluster is not None and queue.cluster not in onprem:
            yield Problem(
                ("queues", index, "cluster"),
                f"{queue.cluster!r} is not an on-prem cluster (on-prem: "
                f"{', '.join(onprem) or 'none'})",
            )
        elif queue.cluster is None and len(onprem) > 1:
            yield Problem(
                ("queues", index), "several on-prem clusters exist; set `cluster` to say which one"
            )
        key = (queue.cluster, queue.kind, queue.namespace, queue.name)
        if key in seen:
            yield Problem(("queues", index, "name"), f"{queue.display_name} is listed twice")
        seen.add(key)
    queue_names = {q.name for q in config.queues}
    for index, rule in enumerate(config.burst_rules):
        for position, name in enumerate(rule.queues):
            if name not in queue_names:
                yield Problem(
                    ("burst_rules", index, "queues", position),
                    f"no entry of `queues` is named {name!r}",
                )


def _tenant_problems(config: FederatorConfig) -> Iterator[Problem]:
    yield from _duplicate_names(("tenants",), [t.name for t in config.tenants], "tenant")
    owner: dict[str, str] = {}
    for index, tenant in enumerate(config.tenants):
        for position, namespace in enumerate(tenant.namespaces):
            if namespace in owner and owner[namespace] != tenant.name:
                yield Problem(
                    ("tenants", index, "namespaces", position),
                    f"namespace {namespace!r} already belongs to tenant "
                    f"{owner[namespace]!r}; a namespace has one tenant",
                )
            owner.setdefault(namespace, tenant.name)
        for position, name in enumerate(tenant.allowed_clusters or ()):
            yield from _cloud_name_problems(
                config, ("tenants", index, "allowed_clusters", position), name
            )
        regions = sorted({c.region for c in config.cloud_clusters if c.region})
        for position, region in enumerate(tenant.allowed_regions or ()):
            if region not in regions:
                close = difflib.get_close_matches(region, regions, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                yield Problem(
                    ("tenants", index, "allowed_regions", position),
                    f"no cloud cluster is in region {region!r} (regions: "
                    f"{', '.join(regions) or 'none'}){hint}",
                )


def _gpu_speed_problems(config: FederatorConfig) -> Iterator[Problem]:
    """A speed applies to the pools whose `gpu_type` is the key exactly (case too, as the
    decision core looks it up), so a key no pool has is a typo that would leave every pool
    at speed 1.0 without a word."""
    offered = sorted({pool.gpu_type for c in config.cloud_clusters for pool in c.pools})
    for key in config.cost.gpu_speed:
        if key in offered:
            continue
        same_letters = [gpu_type for gpu_type in offered if gpu_type.lower() == key.lower()]
        close = same_letters or difflib.get_close_matches(key, offered, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        yield Problem(
            ("cost", "gpu_speed", key),
            f"no cloud pool has gpu_type {key!r} (pools' GPU types: "
            f"{', '.join(offered) or 'none'}; case matters){hint}",
        )


def _start_timeout_problems(config: FederatorConfig) -> Iterator[Problem]:
    """A start timeout no longer than a cloud's startup latency would delete every copy there
    before its pods could start, and re-place it again and again."""
    replacement = config.burst.replacement
    timeout = replacement.start_timeout
    if timeout is None:
        return
    set_here = "start_timeout" in replacement.model_fields_set
    timeout_path: PathKey = ("burst", "replacement", "start_timeout")
    for index, cluster in enumerate(config.clusters):
        if cluster.role != "cloud":
            continue
        latencies: list[tuple[PathKey, str, timedelta]] = [
            (
                ("clusters", index, "startup_latency"),
                f"cloud cluster {cluster.name!r}",
                cluster.startup_latency,
            )
        ]
        for position, pool in enumerate(cluster.pools):
            if pool.startup_latency is not None:
                path: PathKey = ("clusters", index, "pools", position, "startup_latency")
                where = f"pool {cluster.name}/{pool.name}"
                latencies.append((path, where, pool.startup_latency))
        for path, where, latency in latencies:
            if latency < timeout:
                continue
            yield Problem(
                timeout_path if set_here else path,
                f"`burst.replacement.start_timeout` ({format_duration(timeout)}) must be longer "
                f"than the `startup_latency` of {where} ({format_duration(latency)}): "
                "every copy there would be re-placed before it could start; raise it, or set "
                "it to null to never time a start out",
            )


def _priority_problems(config: FederatorConfig) -> Iterator[Problem]:
    """Two multipliers for one priority: only the first would ever apply."""
    first: dict[int, int] = {}
    for index, entry in enumerate(config.cost.priority_multipliers):
        earlier = first.setdefault(entry.min_priority, index)
        if earlier != index:
            yield Problem(
                ("cost", "priority_multipliers", index, "min_priority"),
                f"priority_multipliers[{earlier}] already has min_priority "
                f"{entry.min_priority}; give each priority one multiplier",
            )


def _dataset_problems(config: FederatorConfig) -> Iterator[Problem]:
    yield from _duplicate_names(("datasets",), [d.name for d in config.datasets], "dataset")
    if config.datasets and config.onprem_clusters:
        onprem_index = config.clusters.index(config.onprem_cluster)
        if config.onprem_cluster.object_store is None:
            yield Problem(
                ("clusters", onprem_index),
                "datasets are listed, so the on-prem cluster needs an `object_store`",
            )
    resident = resident_datasets(config)
    for index, dataset in enumerate(config.datasets):
        if dataset.name in resident:
            continue  # never replicated; _residency_problems reports replicas listed anyway
        for name in dataset.replicas:
            yield from _cloud_name_problems(config, ("datasets", index, "replicas", name), name)
        named: set[str] = set()
        for cluster in config.cloud_clusters:
            store = cluster.object_store
            if (
                store is not None
                and store.datasets_uri is None
                and cluster.name not in dataset.replicas
                and cluster.name not in named  # a duplicate cluster name is reported once
            ):
                named.add(cluster.name)
                yield Problem(
                    ("datasets", index, "replicas"),
                    f"no replica location for cluster {cluster.name!r}: add "
                    f"`{cluster.name}: s3://...` here or set that cluster's "
                    "object_store.datasets_uri",
                )


def _residency_problems(config: FederatorConfig) -> Iterator[Problem]:
    known = {d.name: index for index, d in enumerate(config.datasets)}
    ruled: set[str] = set()
    for index, rule in enumerate(config.residency):
        path: PathKey = ("residency", index, "dataset")
        if rule.dataset not in known:
            names = ", ".join(known) or "none"
            yield Problem(path, f"no dataset is named {rule.dataset!r} (datasets: {names})")
            continue
        if rule.dataset in ruled:
            yield Problem(path, f"dataset {rule.dataset!r} already has a residency rule")
        ruled.add(rule.dataset)
        dataset_index = known[rule.dataset]
        for name in config.datasets[dataset_index].replicas:
            yield Problem(
                ("datasets", dataset_index, "replicas", name),
                f"residency[{index}] keeps {rule.dataset!r} on-prem; remove this cloud replica",
            )


def resident_datasets(config: FederatorConfig) -> frozenset[str]:
    """Names of the datasets that must never leave on-prem."""
    return frozenset(rule.dataset for rule in config.residency)


def _registry_problems(config: FederatorConfig) -> Iterator[Problem]:
    if config.registry is None:
        return
    for name in config.registry.staging:
        yield from _cloud_name_problems(config, ("registry", "staging", name), name)


@dataclass(frozen=True, slots=True)
class _Location:
    """A prefix of one bucket on one store: one federator writes to (a replica, a staging area,
    the registry), where a sync counts everything under it as its own, or a dataset's source,
    which a sync reads in full. No written location may overlap another one or a source."""

    store: str  # the store, as `_store_of` names it
    bucket: str
    prefix: str  # "" or ending in "/"
    path: PathKey  # the field that sets it (or would, for a derived location)
    what: str  # "the replica of dataset 'text' on cloud-a"
    derived_from: str = ""  # the setting a location not written out comes from
    is_source: bool = False

    @property
    def described(self) -> str:
        where = self.derived_from or format_path(self.path)
        return f"{self.what}, s3://{self.bucket}/{self.prefix} ({where})"

    def relation_to(self, other: _Location) -> str | None:
        """How this location and `other` overlap ("contains", ...), or None if they do not."""
        if (self.store, self.bucket) != (other.store, other.bucket):
            return None
        if self.prefix == other.prefix:
            return "is the same location as"
        if other.prefix.startswith(self.prefix):
            return "contains"
        return "lies inside" if self.prefix.startswith(other.prefix) else None

    def harm_of(self, relation: str, other: _Location) -> str:
        """What goes wrong when this written location overlaps `other`, and what to do."""
        if not other.is_source:
            return (
                "a sync of one would delete the other's objects: give each a prefix outside "
                "the other's"
            )
        if relation == "contains":
            return (
                "a sync counts everything under it as its own, so its deletes would remove the "
                "source's objects: give it a prefix outside the source"
            )
        return (
            "what federator writes there becomes part of the source, so each sync would copy "
            "its own output again: give it a prefix outside the source"
        )


_DEFAULT_PORTS = {"http": ":80", "https": ":443"}


def _store_of(endpoint: str | None) -> str:
    """One name for one store however its endpoint is written: a trailing slash, the case of
    the scheme and host and the scheme's default port make no difference. Names are not
    resolved (localhost and 127.0.0.1 stay two stores): a policy check does no I/O."""
    if endpoint is None:
        return "AWS"  # AWS's endpoint for the region; bucket names are global there
    # Split by hand: the field's pattern lets through hosts urlsplit raises on (`[::1`).
    scheme, _, rest = endpoint.partition("://")
    host, slash, path = rest.partition("/")
    scheme, host = scheme.lower(), host.lower().removesuffix(":")
    default_port = _DEFAULT_PORTS.get(scheme)
    if default_port is not None:
        host = host.removesuffix(default_port)
    return f"{scheme}://{host}{slash}{path}".rstrip("/")


def _location(
    store: str | None, uri: str, path: PathKey, what: str, derived: str, *, is_source: bool = False
) -> _Location:
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    prefix = prefix.strip("/")
    place = f"{prefix}/" if prefix else ""
    return _Location(_store_of(store), bucket, place, path, what, derived, is_source)


def _source_locations(config: FederatorConfig) -> list[_Location]:
    """Every dataset's source, on the on-prem store (resident ones too: on-prem jobs read them)."""
    if not config.onprem_clusters or config.onprem_cluster.object_store is None:
        return []  # reported by _cluster_problems / _dataset_problems
    endpoint = config.onprem_cluster.object_store.endpoint
    return [
        _location(
            endpoint,
            dataset.source,
            ("datasets", index, "source"),
            f"the source of dataset {dataset.name!r}",
            "",
            is_source=True,
        )
        for index, dataset in enumerate(config.datasets)
    ]


def _written_locations(config: FederatorConfig) -> Iterator[_Location]:
    """Every dataset replica, staging area and the registry, placed as `policy.locations`
    places them (a location left to a cluster's `datasets_uri` or `models_uri` is derived
    the same way)."""
    resident = resident_datasets(config)
    named: set[str] = set()
    for index, dataset in enumerate(config.datasets):
        if dataset.name in resident or dataset.name in named:
            continue  # never replicated, or a duplicate name (reported on its own)
        named.add(dataset.name)
        for number, cluster in enumerate(config.clusters):
            store = cluster.object_store
            if cluster.role != "cloud" or store is None:
                continue
            derived = f"clusters[{number}].object_store.datasets_uri + the dataset's name"
            yield from _set_or_derived(
                store.endpoint,
                dataset.replicas.get(cluster.name),
                (store.datasets_uri, f"{dataset.name}/", derived),
                ("datasets", index, "replicas", cluster.name),
                f"the replica of dataset {dataset.name!r} on {cluster.name}",
            )
    yield from _registry_locations(config)


def _set_or_derived(
    store: str | None,
    written: str | None,
    base: tuple[str | None, str, str],
    path: PathKey,
    what: str,
) -> Iterator[_Location]:
    """A location as the file sets it, else as derived from a store's base URI (`base`: the
    URI, the tail added to it, and how to say so), else none."""
    uri, tail, derived = base
    if written is not None:
        yield _location(store, written, path, what, "")
    elif uri is not None:
        yield _location(store, f"{uri.rstrip('/')}/{tail}", path, what, derived)


def _registry_locations(config: FederatorConfig) -> Iterator[_Location]:
    registry = config.registry
    if registry is None:
        return
    for number, cluster in enumerate(config.clusters):
        store = cluster.object_store
        if store is None:
            continue
        if cluster.role == "onprem":
            if cluster is config.onprem_cluster:
                what = "the model registry"
                yield _location(store.endpoint, registry.uri, ("registry", "uri"), what, "")
            continue
        yield from _set_or_derived(
            store.endpoint,
            registry.staging.get(cluster.name),
            (
                store.models_uri,
                "staging/",
                f"clusters[{number}].object_store.models_uri + staging/",
            ),
            ("registry", "staging", cluster.name),
            f"the model staging area of {cluster.name}",
        )


def _overlapping_location_problems(config: FederatorConfig) -> Iterator[Problem]:
    """A sync treats everything under its location as its own and deletes what its source
    lacks, so two written locations that are equal or nest on one bucket would delete each
    other's objects; and one that overlaps a dataset's source (when a cloud's store is the
    on-prem store) would copy its own output again or delete source objects. Each overlap is
    reported once, where the written location (the later one of two) is set."""
    if len({c.name for c in config.clusters}) < len(config.clusters):
        return  # which cluster a location belongs to is unclear; the duplicate is reported
    sources = _source_locations(config)
    earlier: list[_Location] = []
    for location in _written_locations(config):
        for other in (*sources, *earlier):
            relation = location.relation_to(other)
            if relation is not None:
                yield Problem(
                    location.path,
                    f"{location.described} {relation} {other.described} on the same store "
                    f"and bucket; {location.harm_of(relation, other)}",
                )
                break
        earlier.append(location)


_CHECKS: tuple[tuple[Callable[[FederatorConfig], Iterator[Problem]], frozenset[str]], ...] = (
    (_cluster_problems, frozenset({"clusters"})),
    (_queue_problems, frozenset({"clusters", "queues", "burst_rules"})),
    (_tenant_problems, frozenset({"clusters", "tenants"})),
    (_gpu_speed_problems, frozenset({"clusters", "cost"})),
    (_priority_problems, frozenset({"cost"})),
    (_start_timeout_problems, frozenset({"clusters", "burst"})),
    (_dataset_problems, frozenset({"clusters", "datasets", "residency"})),
    (_residency_problems, frozenset({"datasets", "residency"})),
    (_registry_problems, frozenset({"clusters", "registry"})),
    (
        _overlapping_location_problems,
        frozenset({"clusters", "datasets", "residency", "registry"}),
    ),
)
