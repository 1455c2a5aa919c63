"""From the policy file to ready-made copy engines and registries.

The policy package says where things live (`policy.locations`) and how to reach each store
(`policy.credentials.store_access`); this module turns that into `Endpoint`s, `Location`s,
`DatasetCopier`s and `ModelRegistry`s, with one boto3 client per store shared by all of them.
Credentials are resolved when a store is first needed and then re-read every few seconds
(`storage.rotation`): a rotated key file, a Secret mounted as one, or a Secret the daemon
reads through the on-prem client (`federator.store_secrets`) is used by the very clients,
copiers and registries already built, without a restart.

The set of stores and how they are reached are fixed when `Stores` is built; where each dataset
lives, and the `sync` section's transfer and delete settings, are read from the policy in force
each time a copier is built (`policy_in_force`), so a reload that adds or moves a dataset is
followed by the next copier (`replica_definition` says what a copier is built from).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from botocore.exceptions import SSLError as BotoSSLError

from federator import logs
from federator.errors import UserError
from federator.policy import credentials as policy_credentials
from federator.policy import locations
from federator.policy.config import FederatorConfig
from federator.storage.copying import DatasetCopier, TransferSettings
from federator.storage.endpoints import (
    AddressingStyle,
    Endpoint,
    Location,
    make_client,
    normalize_prefix,
)
from federator.storage.registry import ModelRegistry, sync_back
from federator.storage.retrying import StoreRefused, is_certificate_failure
from federator.storage.rotation import rotating_credentials
from federator.storage.throttle import AdaptiveLimiter
from federator.syncing.modelsync import RoundResult
from federator.syncing.plans import DeletePolicy

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


_ADDRESSING: dict[str, AddressingStyle] = {"path": "path", "virtual": "virtual", "auto": "auto"}


def _readable_ca_bundle(path: Path | None, cluster: str) -> str | None:
    """The store's CA bundle as botocore and urllib3 take it, checked now so a missing file is
    reported with its field instead of as a TLS failure at the first request."""
    if path is None:
        return None
    try:
        with path.open("rb") as bundle:
            bundle.read(1)
    except OSError as error:
        raise UserError(
            f"clusters.{cluster}.object_store.ca_bundle: cannot read {path}: "
            f"{error.strerror or error}"
        ) from None
    return str(path)


def parse_s3_uri(uri: str, *, where: str = "") -> tuple[str, str]:
    """`s3://bucket/prefix/` -> (bucket, "prefix/")."""
    if not uri.startswith("s3://"):
        raise UserError(f"{where or uri}: expected an s3://bucket/prefix/ location, got {uri!r}")
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    return bucket, normalize_prefix(prefix)


def transfer_settings(config: FederatorConfig) -> TransferSettings:
    sync = config.sync
    return TransferSettings(
        object_concurrency=sync.concurrency_per_endpoint,
        part_concurrency=max(2, sync.concurrency_per_endpoint // 2),
        part_size=int(sync.part_size),
        multipart_threshold=int(sync.multipart_threshold),
        stale_upload_age_s=sync.abandoned_upload_age.total_seconds(),
    )


def delete_policy(config: FederatorConfig) -> DeletePolicy:
    delete = config.sync.delete
    return DeletePolicy(
        enabled=delete.enabled,
        max_fraction=delete.max_fraction,
        max_count=delete.max_count,
        hold_back_s=delete.hold_back.total_seconds(),
    )


@dataclass(frozen=True, slots=True)
class ReplicaDefinition:
    """What the copy engine of one dataset to one cluster is built from: equal definitions
    build equal engines, so an engine built for another definition is out of date."""

    source_uri: str
    target_uri: str
    settings: TransferSettings
    deletes: DeletePolicy


def replica_definition(config: FederatorConfig, dataset: str, cluster: str) -> ReplicaDefinition:
    """`dataset`'s copy to `cluster` as `config` defines it; a `UserError` if it has no replica
    there (an unknown dataset or cluster, or a residency rule)."""
    onprem = config.onprem_cluster.name
    return ReplicaDefinition(
        source_uri=locations.dataset_uri(config, dataset, onprem),
        target_uri=locations.dataset_uri(config, dataset, cluster),
        settings=transfer_settings(config),
        deletes=delete_policy(config),
    )


class Stores:
    """Endpoints and clients of every cluster's store, built lazily from one policy."""

    def __init__(
        self,
        config: FederatorConfig,
        *,
        read_secret: policy_credentials.SecretReader | None = None,
        policy_in_force: Callable[[], FederatorConfig] | None = None,
    ) -> None:
        # `config` fixes the stores for the life of this object: which there are, how they are
        # reached (endpoints, credentials, request limits) and the model registry;
        # `policy_in_force()` (by default `config`) says where datasets are and how to copy them.
        self.built_from = config
        self._policy_in_force = policy_in_force or (lambda: config)
        self._read_secret = read_secret
        self._lock = threading.Lock()
        self._endpoints: dict[str, Endpoint] = {}
        self._clients: dict[str, S3Client] = {}
        self._limiters: dict[str, AdaptiveLimiter] = {}
        self._stopping = threading.Event()  # shared by every registry built here

    @property
    def config(self) -> FederatorConfig:
        """The policy in force: where datasets are, and the `sync` section to copy them with."""
        return self._policy_in_force()

    def endpoint(self, cluster: str) -> Endpoint:
        with self._lock:
            if cluster not in self._endpoints:
                self._endpoints[cluster] = self._build_endpoint(cluster)
            return self._endpoints[cluster]

    def client(self, cluster: str) -> S3Client:
        endpoint = self.endpoint(cluster)
        with self._lock:
            if cluster not in self._clients:
                self._clients[cluster] = make_client(endpoint)
            return self._clients[cluster]

    def limiter(self, cluster: str) -> AdaptiveLimiter:
        """The store's adaptive bound on requests in flight, shared by every copier using it."""
        settings = transfer_settings(self.built_from)
        with self._lock:
            if cluster not in self._limiters:
                self._limiters[cluster] = AdaptiveLimiter.with_ceiling(
                    cluster, settings.object_concurrency + settings.part_concurrency
                )
            return self._limiters[cluster]

    def _build_endpoint(self, cluster: str) -> Endpoint:
        known_at_start = any(c.name == cluster for c in self.built_from.clusters)
        if not known_at_start and any(c.name == cluster for c in self.config.clusters):
            raise UserError(
                f"clusters.{cluster}: added by a reload; its object store is used after a "
                "restart (the stores are set up at start)"
            )
        access = policy_credentials.store_access(
            self.built_from, cluster, read_secret=self._read_secret
        )
        keys = access.credentials
        style = access.addressing_style
        return Endpoint(
            name=cluster,
            url=access.endpoint_url,
            access_key_id=keys.access_key_id if keys else None,
            secret_access_key=keys.secret_access_key if keys else None,
            session_token=keys.session_token if keys else None,
            rotating_keys=rotating_credentials(lambda: self._keys(cluster)) if keys else None,
            region=access.region,
            addressing_style="path"
            if style == "path"
            else "virtual"
            if style == "virtual"
            else "auto",
            verify_tls=access.verify_tls,
            ca_bundle=_readable_ca_bundle(access.ca_bundle, cluster),
            # Connections for every object worker plus every part worker, plus listings.
            max_connections=self.built_from.sync.concurrency_per_endpoint * 2 + 4,
        )

    def _keys(self, cluster: str) -> policy_credentials.S3Credentials:
        """The store's keys as its source says now (re-read for rotation); the new values are
        masked in logs like those read at start."""
        keys = policy_credentials.store_access(
            self.built_from, cluster, read_secret=self._read_secret
        ).credentials
        if keys is None:
            raise UserError(f"clusters.{cluster}.object_store.credentials: no keys any more")
        logs.register_secrets([keys.secret_access_key, keys.session_token or ""])
        return keys

    @contextlib.contextmanager
    def certificate_failures_explained(self) -> Iterator[None]:
        """A store whose TLS certificate does not verify becomes a `UserError` naming the
        store and the setting that fixes it (a command then prints one line, no traceback).
        The copy engine and the registry raise it as `StoreRefused` (`retrying.translated`)
        with the certificate failure as its cause; raw clients raise it as it is."""
        try:
            yield
        except (BotoSSLError, StoreRefused) as error:
            failure = error.__cause__ if isinstance(error, StoreRefused) else error
            if not isinstance(failure, BotoSSLError) or not is_certificate_failure(failure):
                raise
            raise self._certificate_error(failure) from None

    def _certificate_error(self, error: BotoSSLError) -> UserError:
        url = str(error.kwargs.get("endpoint_url", ""))
        with self._lock:
            known = [e for e in self._endpoints.values() if e.url and url.startswith(e.url)]
        name = known[0].name if known else "?"
        endpoint = known[0].url if known else url
        bundle = f"the CA bundle {known[0].ca_bundle}" if known and known[0].ca_bundle else None
        reason = str(error.kwargs.get("error", error))
        return UserError(
            f"clusters.{name}.object_store: the TLS certificate of {endpoint} does not verify "
            f"against {bundle or 'the system CAs'} ({reason}); set `ca_bundle:` to the PEM "
            "file of the CA that signed it (or, for a test store only, `verify_tls: false`)"
        )

    def location(self, cluster: str, uri: str, *, where: str) -> Location:
        bucket, prefix = parse_s3_uri(uri, where=where)
        return Location(self.endpoint(cluster), bucket, prefix)

    @property
    def onprem(self) -> str:
        return self.built_from.onprem_cluster.name

    def cloud_clusters(self) -> list[str]:
        return [c.name for c in self.built_from.clusters if c.role == "cloud" and c.object_store]

    def dataset_copier(self, dataset: str, cluster: str) -> DatasetCopier:
        """The engine that replicates `dataset` from the on-prem store to `cluster`'s store,
        as the policy in force defines it."""
        defined = replica_definition(self.config, dataset, cluster)
        return DatasetCopier(
            self.location(self.onprem, defined.source_uri, where=f"datasets.{dataset}.source"),
            self.location(
                cluster, defined.target_uri, where=f"datasets.{dataset}.replicas.{cluster}"
            ),
            settings=defined.settings,
            deletes=defined.deletes,
            source_client=self.client(self.onprem),
            target_client=self.client(cluster),
            source_limiter=self.limiter(self.onprem),
            target_limiter=self.limiter(cluster),
        )

    def registry(self) -> ModelRegistry:
        """The on-prem model registry."""
        registry = self.built_from.registry
        if registry is None:
            raise UserError("the policy file has no `registry` section")
        location = self.location(self.onprem, registry.uri, where="registry.uri")
        return ModelRegistry(
            location, self.client(self.onprem), stopping=self._stopping, **self._registry_tuning()
        )

    def staging(self, cluster: str) -> ModelRegistry:
        """The staging registry of cloud `cluster`, which jobs there publish to."""
        uri = locations.staging_uri(self.built_from, cluster)
        location = self.location(cluster, uri, where=f"registry.staging.{cluster}")
        return ModelRegistry(
            location, self.client(cluster), stopping=self._stopping, **self._registry_tuning()
        )

    def stop_transfers(self) -> None:
        """The process is shutting down: registry copies in flight stop at their next part
        (their multipart upload is aborted; the next round sends the blob again)."""
        self._stopping.set()

    def sync_models_back(self, cluster: str) -> RoundResult:
        """One round of sync back from `cluster`'s staging registry to the on-prem registry."""
        report = sync_back(self.staging(cluster), self.registry())
        return RoundResult(
            cluster,
            report.versions_copied,
            report.bytes_copied,
            report.failures,
            report.left_for_next_round,
        )

    def seed_checkpoint(self, job: str, cluster: str) -> str | None:
        """Copy `job`'s latest on-prem checkpoint into `cluster`'s staging registry."""
        registry = self.registry()
        latest = registry.latest_checkpoint(job)
        if latest is None:
            return None
        self.staging(cluster).receive_version(registry, latest.name, latest.version)
        return latest.version

    def _registry_tuning(self) -> dict[str, int]:
        settings = transfer_settings(self.built_from)
        return {"part_size": settings.part_size, "part_concurrency": settings.part_concurrency}
