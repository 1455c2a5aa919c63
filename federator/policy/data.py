"""The data federator moves: datasets out to the clouds, checkpoints and models back.

A dataset lives on the on-prem store and is replicated to a cloud store before a job that
reads it starts there. The model registry lives on the on-prem store; each cloud has a
staging area that jobs write to and federator syncs back. `sync` tunes the copy engine.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from federator.policy.base import Count, Fraction, Name, NotBoolean, S3Uri, Section, Switch
from federator.policy.units import (
    ByteSize,
    Duration,
    PositiveByteSize,
    PositiveDuration,
    parse_duration,
    parse_size,
)


class Dataset(Section):
    """A dataset jobs read, kept on the on-prem store and replicated to cloud stores."""

    name: Name
    """Unique name jobs use to declare that they read it, e.g. `imagenet-mini`."""

    source: S3Uri
    """Location on the on-prem store, e.g. `s3://onprem-datasets/imagenet-mini/`. The registry,
    and a replica or staging area on the same store (a cloud's store can be the on-prem one),
    may not lie inside it, hold it or equal it: a sync would copy its own output again, or
    delete source objects."""

    size_hint: ByteSize | None = None
    """Approximate size, used for cost estimates before the first listing, e.g. `150Gi`."""

    replicas: dict[Name, S3Uri] = Field(default_factory=dict)
    """Replica location per cloud cluster; `<cluster object_store.datasets_uri><name>/` for a
    cluster not listed."""

    sync_before_start: Switch = True
    """`true`: a job placed in the cloud starts only once this dataset's replica there is
    complete; `false`: it starts at once while the copy runs beside it (for jobs that stream
    their data). The cost model counts the copy's time and transfer cost either way."""


class Registry(Section):
    """The on-prem model registry and the cloud staging areas synced back into it."""

    uri: S3Uri
    """Location of the registry on the on-prem store, e.g. `s3://onprem-models/registry/`."""

    staging: dict[Name, S3Uri] = Field(default_factory=dict)
    """Staging location per cloud cluster where jobs write checkpoints and models; the
    cluster's `object_store.models_uri` + `staging/` for a cluster not listed."""

    checkpoint_sync_interval: PositiveDuration = parse_duration("10m")
    """How often checkpoints of running cloud jobs are synced back, so a re-placed job
    resumes from a recent one."""


class DeletePolicy(Section):
    """Whether objects deleted at the source are deleted from replicas, and how carefully."""

    enabled: Switch = False
    """Delete replica objects whose source is gone (off: replicas only grow)."""

    hold_back: Duration = parse_duration("1h")
    """Only delete an object that has been missing from the source for this long."""

    max_fraction: Fraction = 0.05
    """Never delete more than this fraction of a replica in one sync (guards against a
    mistakenly emptied source)."""

    max_count: Count = 1000
    """Never delete more than this many objects in one sync."""


class Sync(Section):
    """Settings of the S3 copy engine that replicates datasets and brings models back."""

    concurrency_per_endpoint: Annotated[int, Field(ge=1, le=512), NotBoolean] = 16
    """Parallel transfers per S3 endpoint."""

    part_size: PositiveByteSize = parse_size("64Mi")
    """Size of each part of a multipart upload."""

    multipart_threshold: ByteSize = parse_size("64Mi")
    """Objects at least this large are copied in parts."""

    verify: Literal["checksum", "size"] = "checksum"
    """`checksum`: compare every copied object's SHA-256 / ETag with its source; `size`: only
    compare sizes (faster, weaker)."""

    interval: PositiveDuration = parse_duration("5m")
    """How often the leader re-syncs every dataset replica that exists in a cloud store (a
    dataset never sent to a cloud is not copied there ahead of a job), and so measures its
    lag."""

    abandoned_upload_age: PositiveDuration = parse_duration("24h")
    """Incomplete multipart uploads older than this are aborted."""

    delete: DeletePolicy = Field(default_factory=DeletePolicy)
    """Propagation of source deletions to replicas."""
