"""One cloud cluster as the federation loop sees it: its pools and the copies federator put there.

Implements `federator.federation.ports.CloudPort`. Nodes and Pods are reflected to know, per
pool (node label `federator.io/pool`), what is allocatable, requested and pending; Jobs are
reflected only when they carry `federator.io/origin=<instance>`, i.e. copies this federator
instance created. Creating a copy is create-or-get under a deterministic name: a retry after a
crash meets `409 AlreadyExists`, reads the object back and checks it is ours.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from federator.federation.ports import CloudView, CopyRequest, CopyView
from federator.federation.records import copy_name
from federator.kube import convert
from federator.kube import errors as kube_errors
from federator.kube.clients import MERGE_PATCH, Cluster
from federator.kube.onprem import OnPremCluster
from federator.kube.watching import JOBS, NODES, PODS, Reflector, Resource

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class PoolPlacement:
    """How copies are pinned to one pool: its node selector and extra tolerations."""

    node_selector: Mapping[str, str] | None = None
    tolerations: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class CloudSettings:
    instance: str = "federator"
    source_cluster: str = "onprem"
    rewrites: tuple[tuple[str, str], ...] = ()  # (on-prem text, this cloud's text)
    pools: Mapping[str, PoolPlacement] = field(default_factory=dict)
    copy_config_maps: bool = True
    copy_secrets: bool = False


class CloudCluster:
    """Observation of and writes to one cloud cluster."""

    def __init__(self, cluster: Cluster, *, source: OnPremCluster, settings: CloudSettings):
        self.name = cluster.name
        self.cluster = cluster
        self.source = source
        self.settings = settings
        selector = f"{convert.LABEL_ORIGIN}={settings.instance}"
        self.nodes = Reflector(cluster, NODES)
        self.pods = Reflector(cluster, PODS)
        self.copies = Reflector(cluster, Resource(JOBS.kind, JOBS.path, selector))
        self.reflectors = (self.nodes, self.pods, self.copies)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            for reflector in self.reflectors:
                tasks.create_task(reflector.run(), name=f"{self.name}-{reflector.resource.kind}")

    # ---- observation --------------------------------------------------------------------------

    async def snapshot(self, now: float) -> CloudView:
        nodes = list(self.nodes.items.values())
        pods = list(self.pods.items.values())
        node_names = frozenset(str(convert.meta(n).get("name")) for n in nodes)
        copies = convert.copy_views(self.name, self.copies.items.values(), pods, node_names)
        return CloudView(
            cluster=self.name,
            up=self.cluster.health.up,
            synced=all(r.synced for r in self.reflectors),
            down_since=self.cluster.health.down_since,
            pools=convert.pool_views(self.name, nodes, pods),
            copies=tuple(sorted(copies, key=lambda c: (c.namespace, c.name))),
        )

    # ---- writes -------------------------------------------------------------------------------

    async def create_copy(self, request: CopyRequest) -> bool:
        job = request.source
        manifest = self.source.jobs.items.get(job.key)
        if manifest is None:
            raise kube_errors.NotFound(self.source.cluster.name, 404, f"job {job.key} not cached")
        if convert.meta(manifest).get("uid") != job.uid:
            # Deleted and created again under its name since the pass read it: the manifest
            # is another Job's, and its copy would carry the new uid under the old one's name.
            raise kube_errors.NotFound(
                self.source.cluster.name, 404, f"job {job.key} was re-created (new uid)"
            )
        name = copy_name(job.name, job.uid, request.attempt)
        placement = self.settings.pools.get(request.pool, PoolPlacement())
        body = convert.cloud_job(
            manifest,
            name=name,
            instance=self.settings.instance,
            source_cluster=self.settings.source_cluster,
            pool=request.pool,
            attempt=request.attempt,
            suspended=request.suspended,
            rewrites=self.settings.rewrites,
            node_selector=placement.node_selector,
            tolerations=placement.tolerations,
        )
        configs = self._configs_to_copy(manifest)
        await self._refuse_configs_of_others(job.namespace, configs)
        await self._ensure_namespace(job.namespace)
        created = True
        try:
            live = await self.cluster.request(
                "POST", f"/apis/batch/v1/namespaces/{job.namespace}/jobs", body=body, creating=True
            )
        except kube_errors.AlreadyExists:
            created = False
            live = await self.cluster.request("GET", _job_path(job.namespace, name))
            if convert.labels(live).get(convert.LABEL_SOURCE_UID) != job.uid:
                raise kube_errors.Refused(
                    self.name, 409, f"{job.namespace}/{name} exists and is not a copy of {job.key}"
                ) from None
        self.copies.put(live)
        await self._copy_configs(manifest, configs, owner=live, attempt=request.attempt)
        return created

    async def resume_copy(self, copy: CopyView) -> None:
        body = {"spec": {"suspend": False}}
        updated = await self.cluster.request(
            "PATCH", _job_path(copy.namespace, copy.name), body=body, content_type=MERGE_PATCH
        )
        self.copies.put(updated)

    async def delete_copy(self, namespace: str, name: str) -> None:
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        with contextlib.suppress(kube_errors.NotFound):
            await self.cluster.request("DELETE", _job_path(namespace, name), body=body)
        self.copies.forget(f"{namespace}/{name}")

    async def sweep_configs(self, keep_uids: frozenset[str]) -> int:
        selector = f"{convert.LABEL_ORIGIN}={self.settings.instance}"
        deleted = 0
        plurals = ["configmaps"] if self.settings.copy_config_maps else []
        if self.settings.copy_secrets:  # never touch Secrets unless the policy copies them
            plurals.append("secrets")
        for plural in plurals:
            listed = await self.cluster.request(
                "GET", f"/api/v1/{plural}", params={"labelSelector": selector}
            )
            for item in listed.get("items") or ():
                if convert.labels(item).get(convert.LABEL_SOURCE_UID) in keep_uids:
                    continue
                if convert.meta(item).get("ownerReferences"):
                    continue  # the cluster's garbage collector removes it with its owner
                meta = convert.meta(item)
                path = f"/api/v1/namespaces/{meta.get('namespace')}/{plural}/{meta.get('name')}"
                with contextlib.suppress(kube_errors.NotFound):
                    await self.cluster.request("DELETE", path)
                    deleted += 1
        return deleted

    async def _ensure_namespace(self, namespace: str) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": namespace,
                "labels": {convert.LABEL_ORIGIN: self.settings.instance},
            },
        }
        with contextlib.suppress(kube_errors.AlreadyExists):
            await self.cluster.request("POST", "/api/v1/namespaces", body=body, creating=True)

    def _configs_to_copy(self, manifest: convert.Obj) -> list[tuple[str, str]]:
        """(plural, name) of the ConfigMaps and Secrets the job reads that the policy copies."""
        pod_spec = ((manifest.get("spec") or {}).get("template") or {}).get("spec") or {}
        config_maps, secrets = convert.referenced_configs(pod_spec)
        wanted: list[tuple[str, str]] = []
        if self.settings.copy_config_maps:
            wanted += [("configmaps", name) for name in sorted(config_maps)]
        if self.settings.copy_secrets:
            wanted += [("secrets", name) for name in sorted(secrets)]
        return wanted

    async def _refuse_configs_of_others(
        self, namespace: str, configs: Sequence[tuple[str, str]]
    ) -> None:
        """Checked before the copy exists: a copy created first would start, read the cloud's
        object of that name instead of the on-prem one, and stay a placement never confirmed."""
        for plural, name in configs:
            try:
                live = await self.cluster.request("GET", _config_path(namespace, plural, name))
            except kube_errors.NotFound:
                continue
            self._require_ours(live, plural, namespace, name)

    async def _copy_configs(
        self,
        manifest: convert.Obj,
        configs: Sequence[tuple[str, str]],
        *,
        owner: convert.Obj,
        attempt: int,
    ) -> None:
        namespace = str(convert.meta(manifest).get("namespace"))
        uid = str(convert.meta(manifest).get("uid"))
        for plural, name in configs:
            await self._copy_config(plural, namespace, name, uid=uid, owner=owner, attempt=attempt)

    async def _copy_config(
        self, plural: str, namespace: str, name: str, *, uid: str, owner: convert.Obj, attempt: int
    ) -> None:
        path = f"/api/v1/namespaces/{namespace}/{plural}"
        try:
            source = await self.source.cluster.request("GET", f"{path}/{name}")
        except kube_errors.NotFound:
            log.warning("config_missing_on_prem", kind=plural, namespace=namespace, name=name)
            return
        body = convert.copied_config(
            source, instance=self.settings.instance, source_uid=uid, attempt=attempt, owner=owner
        )
        try:
            await self.cluster.request("POST", path, body=body, creating=True)
        except kube_errors.AlreadyExists:
            await self._add_owner(plural, namespace, name, owner)

    async def _add_owner(self, plural: str, namespace: str, name: str, owner: convert.Obj) -> None:
        """A ConfigMap shared by several copies is owned by all of them (GC waits for the last).

        Only one this federator instance made: an owner on someone else's object would have the
        cloud's garbage collector delete it with the copy (the check before creating the copy
        cannot see an object created in between)."""
        path = _config_path(namespace, plural, name)
        live = await self.cluster.request("GET", path)
        self._require_ours(live, plural, namespace, name)
        owners = list(convert.meta(live).get("ownerReferences") or ())
        reference = convert.owner_reference(owner)
        if any(o.get("uid") == reference["uid"] for o in owners):
            return
        body = {
            "metadata": {
                "resourceVersion": convert.meta(live).get("resourceVersion"),
                "ownerReferences": [*owners, reference],
            }
        }
        try:
            await self.cluster.request("PATCH", path, body=body, content_type=MERGE_PATCH)
        except kube_errors.Conflict:
            log.info("config_owner_conflict", path=path)  # next placement pass retries

    def _require_ours(self, live: convert.Obj, plural: str, namespace: str, name: str) -> None:
        """Refuse, naming it, an object of the copy's name that this instance did not create."""
        instance = self.settings.instance
        if convert.labels(live).get(convert.LABEL_ORIGIN) == instance:
            return
        kind = _KINDS[plural]
        raise kube_errors.Refused(
            self.name,
            409,
            f"{kind} {namespace}/{name} exists on cluster {self.name} and federator instance "
            f"{instance} did not create it (no label {convert.LABEL_ORIGIN}={instance}); "
            f"federator leaves it untouched and does not place the job there, because its copy "
            f"would read that {kind} instead of the on-prem one: rename the {kind} on-prem or "
            f"on {self.name}, or delete the one on {self.name}",
        )


_KINDS = {"configmaps": "ConfigMap", "secrets": "Secret"}


def _config_path(namespace: str, plural: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/{plural}/{name}"


def _job_path(namespace: str, name: str) -> str:
    return f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}"
