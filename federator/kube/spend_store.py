"""Keeps the federation's `SpendBook` in a ConfigMap on the on-prem cluster.

State lives in Kubernetes objects, never only in memory: a restarted daemon or a new leader
reads the spend of jobs that are gone from here. Only the leader writes (the federation loop
asks its write fence first). A write that conflicts (a leader hand-over) re-reads the version
and writes again: the writer is the replica that leads now and has just seen every job.
"""

from __future__ import annotations

import structlog

from federator.federation.spending import SpendBook
from federator.kube import errors as kube_errors
from federator.kube.clients import Cluster
from federator.kube.configmap_object import VersionedConfigMap

log = structlog.get_logger(__name__)

DATA_KEY = "book.json"


class ConfigMapSpendStore:
    """`SpendStore` in ConfigMap `name` of `namespace` (created on the first save)."""

    def __init__(self, cluster: Cluster, *, namespace: str, name: str) -> None:
        self._object = VersionedConfigMap(cluster, namespace=namespace, name=name, key=DATA_KEY)

    async def load(self) -> SpendBook:
        text = await self._object.read()
        if text is None:
            return SpendBook()
        try:
            return SpendBook.from_json(text)
        except ValueError as error:
            # Starting from nothing under-counts only the spend of deleted jobs; refusing to
            # start would stop every burst. Say it loudly; the next save replaces the object.
            log.error("spend_book_unreadable", configmap=self._object.where, error=str(error))
            return SpendBook()

    async def save(self, book: SpendBook) -> None:
        for _ in range(3):
            try:
                await self._object.write(book.to_json())
                return
            except (kube_errors.Conflict, kube_errors.AlreadyExists):
                await self._object.refresh_version()
        await self._object.write(book.to_json())
