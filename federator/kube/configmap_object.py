"""One ConfigMap that a store keeps a single value in, replaced whole at each write.

The spend book (`spend_store`) and the pool blocks (`pool_block_store`) each live in a
ConfigMap of their own under one data key. A write carries the resourceVersion last read
(`read` or the previous `write`), so a replica that wrote in between makes it fail with a 409
(`kube_errors.Conflict`; `AlreadyExists` when both created it) instead of being overwritten:
the store decides what to do then (write its own value again, or merge first).
"""

from __future__ import annotations

from typing import Any

from federator.kube import errors as kube_errors
from federator.kube.clients import Cluster


class VersionedConfigMap:
    """ConfigMap `name` in `namespace`, its value under data key `key`."""

    def __init__(self, cluster: Cluster, *, namespace: str, name: str, key: str) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.name = name
        self.key = key
        self._version: str | None = None  # None: not read yet, or there is no object

    @property
    def where(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def _path(self) -> str:
        return f"/api/v1/namespaces/{self.namespace}/configmaps/{self.name}"

    async def read(self) -> str | None:
        """The value ("" when the object lacks the key), or None when there is no object."""
        try:
            found = await self.cluster.request("GET", self._path)
        except kube_errors.NotFound:
            self._version = None
            return None
        self._version = str(found["metadata"]["resourceVersion"])
        return str((found.get("data") or {}).get(self.key, ""))

    async def refresh_version(self) -> None:
        """Take the object's current version, so that the next write replaces it."""
        try:
            found = await self.cluster.request("GET", self._path)
            self._version = str(found["metadata"]["resourceVersion"])
        except kube_errors.NotFound:
            self._version = None

    async def write(self, value: str) -> None:
        """Create the object, or replace the version last seen (409 if it moved since)."""
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": {"app.kubernetes.io/managed-by": "federator"},
            },
            "data": {self.key: value},
        }
        if self._version is None:
            path = f"/api/v1/namespaces/{self.namespace}/configmaps"
            written = await self.cluster.request("POST", path, body=body, creating=True)
        else:
            body["metadata"]["resourceVersion"] = self._version
            written = await self.cluster.request("PUT", self._path, body=body)
        self._version = str(written["metadata"]["resourceVersion"])
