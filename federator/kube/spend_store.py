"""Keeps the federation's `SpendBook` in a ConfigMap on the on-prem cluster.

State lives in Kubernetes objects, never only in memory: a restarted daemon or a new leader
reads the spend of jobs that are gone from here. Only the leader writes (the federation loop
asks its write fence first). A write that conflicts (a leader hand-over) re-reads the version
and writes again: the writer is the replica that leads now and has just seen every job.
"""

from __future__ import annotations

from typing import Any

import structlog

from federator.federation.spending import SpendBook
from federator.kube import errors as kube_errors
from federator.kube.clients import Cluster

log = structlog.get_logger(__name__)

DATA_KEY = "book.json"


class ConfigMapSpendStore:
    """`SpendStore` in ConfigMap `name` of `namespace` (created on the first save)."""

    def __init__(self, cluster: Cluster, *, namespace: str, name: str) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.name = name
        self._version: str | None = None

    @property
    def _path(self) -> str:
        return f"/api/v1/namespaces/{self.namespace}/configmaps/{self.name}"

    async def load(self) -> SpendBook:
        try:
            found = await self.cluster.request("GET", self._path)
        except kube_errors.NotFound:
            self._version = None
            return SpendBook()
        self._version = str(found["metadata"]["resourceVersion"])
        text = (found.get("data") or {}).get(DATA_KEY, "")
        try:
            return SpendBook.from_json(text)
        except ValueError as error:
            # Starting from nothing under-counts only the spend of deleted jobs; refusing to
            # start would stop every burst. Say it loudly; the next save replaces the object.
            log.error("spend_book_unreadable", configmap=f"{self.namespace}/{self.name}",
                      error=str(error))  # fmt: skip
            return SpendBook()

    async def save(self, book: SpendBook) -> None:
        for _ in range(3):
            try:
                await self._write(book)
                return
            except (kube_errors.Conflict, kube_errors.AlreadyExists):
                await self._refresh_version()
        await self._write(book)

    async def _write(self, book: SpendBook) -> None:
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": {"app.kubernetes.io/managed-by": "federator"},
            },
            "data": {DATA_KEY: book.to_json()},
        }
        if self._version is None:
            path = f"/api/v1/namespaces/{self.namespace}/configmaps"
            written = await self.cluster.request("POST", path, body=body, creating=True)
        else:
            body["metadata"]["resourceVersion"] = self._version
            written = await self.cluster.request("PUT", self._path, body=body)
        self._version = str(written["metadata"]["resourceVersion"])

    async def _refresh_version(self) -> None:
        try:
            found = await self.cluster.request("GET", self._path)
            self._version = str(found["metadata"]["resourceVersion"])
        except kube_errors.NotFound:
            self._version = None
