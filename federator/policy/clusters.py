"""The clusters federator connects to, the GPU pools it may use, and what each costs.

One on-prem cluster holds the queue; each cloud cluster offers pools — groups of identical
GPU nodes selected by labels — with a capacity type (spot or on-demand), a cap on how many
GPUs federator may take, and a price source. Each cluster has an object store, where the
datasets a job reads are replicated and where checkpoints and models are staged.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import Field, model_validator

from federator.policy.base import (
    ConfigPath,
    Count,
    LabelKey,
    Name,
    NonNegative,
    NotBoolean,
    S3Uri,
    Section,
    Switch,
)
from federator.policy.references import Connection, CredentialsRef
from federator.policy.units import (
    Duration,
    PositiveByteSize,
    PositiveDuration,
    parse_duration,
    parse_size,
)

POOL_LABEL = "federator.io/pool"


class FixedPrice(Section):
    """A price you set yourself, e.g. a negotiated rate or a reserved-instance price."""

    source: Literal["fixed"]
    """Selects this kind of price source."""

    usd_per_gpu_hour: NonNegative
    """Price of one GPU for one hour, in US dollars."""


class CatalogPrice(Section):
    """A row of a price catalog CSV in SkyPilot's catalog format (AWS or GCP `vms.csv`).

    Spot pools read the `SpotPrice` column, on-demand pools the `Price` column; the instance
    price is divided by the pool's `gpus_per_node` to get a price per GPU-hour."""

    source: Literal["catalog"]
    """Selects this kind of price source."""

    file: ConfigPath
    """Path to the catalog CSV (relative to this policy file)."""

    instance_type: str = Field(min_length=1)
    """`InstanceType` column to match, e.g. `p4d.24xlarge` (AWS) or `a3-highgpu-8g` (GCP)."""

    region: str = Field(min_length=1)
    """`Region` column to match, e.g. `us-east-1`."""

    zone: str | None = None
    """`AvailabilityZone` column to match (an AZ ID such as `use1-az1` on AWS); the cheapest
    zone of the region when omitted."""

    accelerator: str | None = None
    """GCP only: `AcceleratorName` of the accelerator row whose price is added to the host's,
    e.g. `H100` (GCP prices the GPUs separately from the VM)."""


class AwsSpotPrice(Section):
    """Live AWS spot prices (`DescribeSpotPriceHistory`) and placement scores, with AWS
    credentials from boto3's standard provider chain. Spot pools only."""

    source: Literal["aws-spot-api"]
    """Selects this kind of price source."""

    instance_type: str = Field(min_length=1)
    """EC2 instance type, e.g. `p5.48xlarge`."""

    region: str = Field(min_length=1)
    """AWS region to query, e.g. `us-east-1`."""

    zones: tuple[str, ...] = ()
    """Availability zones to consider; every zone of the region when empty."""

    refresh_interval: PositiveDuration = timedelta(minutes=5)
    """How often to fetch new prices."""

    max_age: PositiveDuration = timedelta(hours=1)
    """A price older than this is not used for new decisions (the pool is skipped)."""

    placement_scores: Switch = True
    """Also fetch spot placement scores (capacity signal, 1-10) for this instance type."""


PriceSource = Annotated[FixedPrice | CatalogPrice | AwsSpotPrice, Field(discriminator="source")]


class Toleration(Section):
    """A Kubernetes toleration added to jobs placed on the pool (e.g. for tainted GPU nodes)."""

    key: str | None = None
    """Taint key to tolerate; all taints when omitted with `operator: Exists`."""

    operator: Literal["Equal", "Exists"] = "Equal"
    """`Equal` matches `key` and `value`; `Exists` matches any value of `key`."""

    value: str | None = Field(default=None, examples=["present"])
    """Taint value to match with `operator: Equal`."""

    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    """Taint effect to tolerate; every effect when omitted."""


class Pool(Section):
    """A group of identical GPU nodes in a cloud cluster that federator may place jobs on."""

    name: Name
    """Unique name within its cluster, e.g. `a100-spot`; shown as `cluster/pool`."""

    gpu_type: str = Field(min_length=1)
    """GPU model of the nodes, as in the `nvidia.com/gpu.product` label, e.g. `A100`."""

    gpus_per_node: Annotated[int, Field(ge=1, le=64), NotBoolean]
    """GPUs on each node of the pool."""

    capacity_type: Literal["spot", "on-demand"]
    """`spot` (cheap, may be preempted) or `on-demand` (full price, not preempted)."""

    max_gpus: Count
    """Most GPUs federator may use in this pool at once (its share of the pool)."""

    price: PriceSource
    """Where the price of this pool comes from: `fixed`, `catalog` or `aws-spot-api`."""

    node_selector: dict[LabelKey, str] | None = None
    """Node labels that select the pool's nodes; `federator.io/pool: <name>` when omitted."""

    tolerations: tuple[Toleration, ...] = ()
    """Tolerations added to jobs placed here, for tainted GPU nodes."""

    zone: str | None = None
    """Zone the pool's nodes run in (informational; used in decision reasons)."""

    preemption_rate_per_hour: NonNegative | None = None
    """Prior guess of preemptions per running hour; from the spot interruption data (or 0 for
    on-demand) when omitted. Observed preemptions refine it while federator runs."""

    startup_latency: Duration | None = None
    """Time from placing a job to its pods running; the cluster's value when omitted."""

    @property
    def selector(self) -> dict[str, str]:
        """The node labels jobs placed on this pool must match."""
        return dict(self.node_selector) if self.node_selector else {POOL_LABEL: self.name}

    @model_validator(mode="after")
    def _aws_api_prices_spot_only(self) -> Pool:
        if self.price.source == "aws-spot-api" and self.capacity_type != "spot":
            raise ValueError(
                "price source aws-spot-api only prices spot capacity; use `fixed` or "
                "`catalog` for an on-demand pool"
            )
        return self


class ObjectStore(Section):
    """The S3-compatible object store of a cluster: its endpoint, region and credentials."""

    endpoint: str | None = Field(default=None, pattern=r"^https?://[^\s/]+(/.*)?$")
    """URL of the S3 API, e.g. `https://s3.us-east-1.amazonaws.com` or an on-prem MinIO /
    SeaweedFS URL; AWS's endpoint for `region` when omitted. Two clusters whose endpoints
    differ only in a trailing slash, the case of the host or the default port (`:443`,
    `:80`) share one store, and their locations on it must not overlap."""

    region: str = "us-east-1"
    """Region to sign requests for."""

    credentials: CredentialsRef
    """Where the access keys are kept (environment, file or Kubernetes Secret)."""

    addressing_style: Literal["auto", "path", "virtual"] = "auto"
    """`path` (`endpoint/bucket/key`, needed by most on-prem stores), `virtual`
    (`bucket.endpoint/key`) or `auto` (let boto3 choose)."""

    verify_tls: Switch = True
    """Verify the endpoint's TLS certificate; turn off only for a self-signed test store."""

    ca_bundle: ConfigPath | None = Field(default=None, examples=["/etc/federator/store-ca.pem"])
    """PEM file with the CA certificate(s) that signed the endpoint's TLS certificate, for a
    store whose certificate no public CA signed (an on-prem SeaweedFS, MinIO or Ceph behind a
    private CA); the system's trusted CAs when omitted. Needs `verify_tls: true`."""

    datasets_uri: S3Uri | None = None
    """Where dataset replicas live in this store, e.g. `s3://cloud-a-datasets/`; a dataset's
    replica defaults to `<datasets_uri><dataset name>/`."""

    models_uri: S3Uri | None = None
    """Where the model registry (on-prem) or its staging area (cloud) lives in this store."""

    @model_validator(mode="after")
    def _ca_bundle_needs_verification(self) -> ObjectStore:
        if self.ca_bundle is not None and not self.verify_tls:
            raise ValueError(
                "ca_bundle is only used to verify the store's certificate, and verify_tls is "
                "false; remove one of them"
            )
        return self


class Cluster(Section):
    """A Kubernetes cluster federator connects to: the on-prem one or a cloud one."""

    name: Name
    """Unique name, e.g. `onprem` or `cloud-a`; used in labels, logs and metrics."""

    role: Literal["onprem", "cloud"]
    """`onprem` holds the queue federator watches; `cloud` offers pools to burst to."""

    connection: Connection
    """How to reach the cluster's API server."""

    provider: str = ""
    """Who runs the cluster, e.g. `aws`, `gcp`, `azure` or `onprem`; used for tenant rules."""

    region: str = ""
    """Region of the cluster, e.g. `us-east-1`; used for tenant and residency rules."""

    object_store: ObjectStore | None = None
    """The object store datasets are replicated to and models are staged in."""

    pools: tuple[Pool, ...] = ()
    """GPU pools federator may use (cloud clusters only)."""

    egress_usd_per_gb: NonNegative = 0.0
    """Price of moving one GB out of this cluster's store (results and checkpoints coming
    back), in US dollars."""

    transfer_bandwidth_per_second: PositiveByteSize = parse_size("100Mi")
    """Expected copy speed from the on-prem store to this cluster's store, per second."""

    startup_latency: Duration = parse_duration("2m")
    """Typical time from placing a job to its pods running (node provisioning, image pull)."""

    max_bursted_jobs: Count | None = None
    """Most jobs federator may run on this cluster at once; no cluster cap when omitted."""

    max_bursted_gpus: Count | None = None
    """Most GPUs federator may use on this cluster at once; no cluster cap when omitted."""

    unreachable_timeout: PositiveDuration = parse_duration("5m")
    """After the API server has not answered for this long, its jobs are re-placed elsewhere;
    a job whose copy it refuses with 401 (federator's credentials) is held this long for a
    fixed kubeconfig, then its placement counts as refused."""

    draining: Switch = Field(default=False, examples=[True])
    """Cloud clusters only: place no new job here (its pools are offered to no decision, whose
    reason says the cluster is draining), while the jobs already here run on, are mirrored,
    re-placed elsewhere after a preemption and collected as usual. Read at every pass, so a
    reload applies it at once. To retire a cloud: set this, wait until `federator status`
    shows no job on it, then remove the cluster (see docs/operations.md)."""

    @model_validator(mode="after")
    def _pools_match_role(self) -> Cluster:
        if self.role == "onprem" and self.pools:
            raise ValueError("an on-prem cluster has no pools; its capacity comes from Kueue")
        if self.role == "cloud" and not self.pools:
            raise ValueError("a cloud cluster needs at least one entry in `pools`")
        if self.role == "onprem" and self.draining:
            raise ValueError("only a cloud cluster can drain: `draining` is for role `cloud`")
        return self
