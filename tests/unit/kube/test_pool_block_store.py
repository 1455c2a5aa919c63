"""The pool blocks' ConfigMap over an in-memory apiserver: created, read back, merged over a
409, ended blocks dropped, unreadable content read as no blocks (loudly, naming the object)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import structlog.testing

from federator.federation.blocks import BlockCause, PoolBlock, PoolBlocks
from federator.kube.errors import AlreadyExists, Conflict, NotFound
from federator.kube.pool_block_store import DATA_KEY, ConfigMapPoolBlockStore

PATH = "/api/v1/namespaces/federator/configmaps/fed-pool-blocks"


class Apiserver:
    """ConfigMaps by path, with resourceVersion preconditions like a real apiserver."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.version = 0
        self.writes = 0

    async def request(
        self, method: str, path: str, *, body: Any = None, creating: bool = False, **_: Any
    ) -> dict[str, Any]:
        if method == "GET":
            if path not in self.objects:
                raise NotFound("onprem", 404, "not found")
            return copy.deepcopy(self.objects[path])
        if method == "POST":
            path = f"{path}/{body['metadata']['name']}"
            if path in self.objects:
                raise AlreadyExists("onprem", 409, "already exists")
        elif method == "PUT":
            current = self.objects[path]["metadata"]["resourceVersion"]
            if body["metadata"].get("resourceVersion") != current:
                raise Conflict("onprem", 409, "the object has been modified")
        self.version += 1
        self.writes += 1
        stored = copy.deepcopy(body)
        stored["metadata"]["resourceVersion"] = str(self.version)
        self.objects[path] = stored
        return copy.deepcopy(stored)

    def text(self) -> str:
        return str(self.objects[PATH]["data"][DATA_KEY])


def store(api: Apiserver) -> ConfigMapPoolBlockStore:
    return ConfigMapPoolBlockStore(api, namespace="federator", name="fed-pool-blocks")  # type: ignore[arg-type]


def blocks(**until: float) -> PoolBlocks:
    return PoolBlocks(
        {("cloud-a", p): PoolBlock(t, BlockCause.PREEMPTION, f"ns/{p}") for p, t in until.items()}
    )


async def test_no_configmap_reads_as_no_blocks_and_the_first_save_creates_it() -> None:
    api = Apiserver()
    first = store(api)
    assert await first.load() == PoolBlocks()
    await first.save(blocks(spot=2000.0), now=100.0)
    assert await store(api).load() == blocks(spot=2000.0), "a new process reads it back"
    assert json.loads(api.text())["blocks"] == [
        {
            "cluster": "cloud-a",
            "pool": "spot",
            "until": 2000.0,
            "cause": "preemption",
            "job": "ns/spot",
        }
    ]


async def test_a_save_is_idempotent() -> None:
    api = Apiserver()
    one = store(api)
    await one.save(blocks(spot=2000.0), now=100.0)
    await one.save(blocks(spot=2000.0), now=100.0)
    assert await store(api).load() == blocks(spot=2000.0)


async def test_a_conflicting_write_is_merged_and_the_later_block_wins() -> None:
    api = Apiserver()
    old_leader, new_leader = store(api), store(api)
    await old_leader.load()
    await new_leader.load()
    await new_leader.save(blocks(spot=3000.0, big=2500.0), now=100.0)
    # The old leader's version is stale: its create is a 409, it re-reads and merges.
    written = await old_leader.save(blocks(spot=2000.0, ondemand=2200.0), now=100.0)
    expected = blocks(spot=3000.0, big=2500.0, ondemand=2200.0)
    assert written == expected
    assert await store(api).load() == expected
    await new_leader.save(blocks(spot=3000.0), now=100.0)  # now its version is stale: a PUT 409
    assert await store(api).load() == expected, "no block is lost by a merge"


async def test_ended_blocks_are_dropped_when_written() -> None:
    api = Apiserver()
    one = store(api)
    await one.save(blocks(spot=150.0, ondemand=2000.0), now=100.0)
    await store(api).save(blocks(big=900.0), now=200.0)  # 409 for the second store: merged
    assert await store(api).load() == blocks(ondemand=2000.0, big=900.0)


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[]",
        '{"version": 2, "blocks": []}',
        '{"version": 1, "blocks": [{"cluster": "cloud-a"}]}',
        '{"version": 1, "blocks": [{"cluster": "a", "pool": "b", "job": "c", "until": 1,'
        ' "cause": "boredom"}]}',
    ],
)
async def test_unreadable_content_is_logged_with_the_object_and_read_as_no_blocks(
    content: str,
) -> None:
    api = Apiserver()
    one = store(api)
    await one.save(blocks(spot=2000.0), now=100.0)
    api.objects[PATH]["data"][DATA_KEY] = content
    with structlog.testing.capture_logs() as logged:
        assert await one.load() == PoolBlocks()
    (error,) = logged
    assert (error["event"], error["log_level"]) == ("pool_blocks_unreadable", "error")
    assert error["configmap"] == "federator/fed-pool-blocks"
    await one.save(blocks(ondemand=2000.0), now=100.0)
    assert await store(api).load() == blocks(ondemand=2000.0), "the next save replaces it"
