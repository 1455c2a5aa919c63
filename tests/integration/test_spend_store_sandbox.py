"""The spend book's ConfigMap on a real apiserver: created, read back, written over a conflict."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import structlog.testing

from federator.federation.records import LostCopy
from federator.federation.spending import Contribution, SpendBook
from federator.kube import clients
from federator.kube.spend_store import ConfigMapSpendStore
from federator.sandbox import SandboxEnv
from federator.sandbox.kubeapi import KubeApi
from federator.sandbox.layout import Layout

pytestmark = [pytest.mark.sandbox]

# An orphan: a copy lost with its cluster whose Job went before it was settled.
ORPHAN = LostCopy("cloud-b", "team-a", "j-u2-1", 1, usd_per_hour=8.0, since=1.8e9)
BOOK = SpendBook(
    "2026-11-29", "2026-11", 1.25, {"team-a": 4.5}, {"u": Contribution(1, 2, "t")},
    {ORPHAN.key("u2"): Contribution(3, 3, "t", ORPHAN)},
)  # fmt: skip


async def test_the_book_survives_a_new_process_and_a_conflicting_writer(
    sandbox: SandboxEnv, namespace_factory: Callable[..., str]
) -> None:
    namespace = namespace_factory("onprem", prefix="spend")
    cluster = await clients.connect(sandbox.kubeconfig, "onprem")
    try:
        first = ConfigMapSpendStore(cluster, namespace=namespace, name="fed-spend")
        assert await first.load() == SpendBook(), "no ConfigMap yet: an empty book"
        await first.save(BOOK)
        second = ConfigMapSpendStore(cluster, namespace=namespace, name="fed-spend")
        assert await second.load() == BOOK

        newer = BOOK.carry({}, day=BOOK.day, month=BOOK.month)  # "u" is gone
        await second.save(newer)  # `first` now holds an old resourceVersion
        await first.save(BOOK)  # conflict: re-read the version, write again
        third = ConfigMapSpendStore(cluster, namespace=namespace, name="fed-spend")
        assert await third.load() == BOOK

        api = KubeApi.for_site(Layout(sandbox.root), "onprem")
        await api.request(
            "PATCH",
            f"/api/v1/namespaces/{namespace}/configmaps/fed-spend",
            body={"data": {"book.json": "not json"}},
            content_type="application/merge-patch+json",
        )
        with structlog.testing.capture_logs() as logged:
            assert await third.load() == SpendBook()
        assert [e["event"] for e in logged] == ["spend_book_unreadable"]
    finally:
        await cluster.close()
