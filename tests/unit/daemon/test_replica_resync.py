"""`sync.interval`: the leader re-syncs every dataset replica that exists, so a complete
replica's `federator_sync_lag_seconds` stays within about one interval between bursts."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from federator import metrics, policy
from federator.daemon import loops, replicas
from federator.syncing.plans import ListedObject
from federator.syncing.replication import Replicator
from tests.support.configs import sandbox_config
from tests.unit.storage.test_replication import FakeEngine


def sandbox(tmp_path: Path) -> policy.FederatorConfig:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(sandbox_config()))
    return policy.load_policy(path)


def complete_engine() -> FakeEngine:
    engine = FakeEngine()
    engine.target = list(engine.source)
    return engine


def released_empty_engine() -> FakeEngine:
    engine = FakeEngine()  # nothing at the target; its copy runs through at once
    engine.release.set()
    return engine


class Engines:
    """A copy engine per (dataset, cluster), made on first use, like `Stores.dataset_copier`."""

    def __init__(self, make: Any = complete_engine) -> None:
        self.made: dict[tuple[str, str], FakeEngine] = {}
        self._make = make

    def __call__(self, dataset: str, cluster: str) -> FakeEngine:
        return self.made.setdefault((dataset, cluster), self._make())


def test_a_replica_location_is_every_dataset_on_every_cloud_but_a_resident_one(
    tmp_path: Path,
) -> None:
    config = sandbox(tmp_path)
    assert replicas.replica_pairs(config, config) == [
        ("imagenet-mini", "cloud-a"),
        ("imagenet-mini", "cloud-b"),
        ("wikitext", "cloud-a"),
        ("wikitext", "cloud-b"),
    ]  # patient-scans has a residency rule: it has no replica anywhere


async def test_a_replica_found_in_the_store_is_rechecked_and_its_lag_is_fresh() -> None:
    now = [1000.0]  # the last copy listed at t=100: 900 s ago
    engines = Engines()
    replicator = Replicator(engines, clock=lambda: now[0])
    in_store = {("wikitext", "cloud-a")}
    checked = await replicas.resync_known_replicas(
        replicator,
        [("imagenet-mini", "cloud-a"), ("wikitext", "cloud-a")],
        exists=lambda *pair: pair in in_store,
        may_write=lambda: True,
    )
    assert checked == [("wikitext", "cloud-a")]
    assert set(engines.made) == {("wikitext", "cloud-a")}  # never sent out: not copied ahead
    assert replicator.lags() == {("wikitext", "cloud-a"): 900.0}  # as of the FakeEngine listing


async def test_a_replica_behind_its_source_is_copied_and_ends_complete() -> None:
    engine = FakeEngine()  # nothing at the target yet, but this process checked it before
    engine.release.set()
    replicator = Replicator(lambda *_: engine, clock=lambda: 100.0, recheck_after_s=0.0)
    engine.target = list(engine.source)
    await replicator.ensure_replicated("ds", "cloud-a")
    engine.source.append(ListedObject("c", 50, "e3", 90.0))  # a new source object
    checked = await replicas.resync_known_replicas(
        replicator, [("ds", "cloud-a")], exists=lambda *_: False, may_write=lambda: True
    )
    assert checked == [("ds", "cloud-a")]  # known from memory: the store is not asked
    assert engine.runs == 1
    assert replicator.bytes_remaining("ds", "cloud-a") == 0


async def test_a_replica_in_use_that_a_reload_moved_is_filled_at_its_new_location() -> None:
    """The new location is empty (nothing there for `exists` to find), but the replica was in
    use: the next round copies it there rather than leaving it for the next job to wait on."""
    engines = Engines(make=released_empty_engine)
    replicator = Replicator(engines, clock=lambda: 100.0, recheck_after_s=0.0)
    pair = ("ds", "cloud-a")
    engines.made[pair] = complete_engine()  # the old location: complete, checked by a job
    await replicator.ensure_replicated(*pair)
    replicator.forget(*pair)  # a reload moved the replica
    del engines.made[pair]  # the next engine is built for the new, empty location
    checked = await replicas.resync_known_replicas(
        replicator, [pair], exists=lambda *_: False, may_write=lambda: True
    )
    assert checked == [pair]
    new = engines.made[pair]
    assert new.runs == 1, "the new location was copied to"
    assert replicator.bytes_remaining(*pair) == 0


async def test_a_follower_resyncs_nothing() -> None:
    engines = Engines()
    replicator = Replicator(engines)
    checked = await replicas.resync_known_replicas(
        replicator, [("ds", "cloud-a")], exists=lambda *_: True, may_write=lambda: False
    )
    assert checked == []
    assert engines.made == {}


async def test_a_failure_is_logged_the_other_replicas_go_on_and_the_next_round_retries(
    capsys: pytest.CaptureFixture[str],
) -> None:
    answers: Iterator[OSError | bool] = iter([OSError("store down"), True, True])

    def exists(dataset: str, cluster: str) -> bool:
        answer = next(answers)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    replicator = Replicator(Engines())
    pairs = [("imagenet-mini", "cloud-a"), ("wikitext", "cloud-a")]
    first = await replicas.resync_known_replicas(
        replicator, pairs, exists=exists, may_write=lambda: True
    )
    assert first == [("wikitext", "cloud-a")]
    assert "replica_resync_failed" in capsys.readouterr().out
    second = await replicas.resync_known_replicas(
        replicator, pairs, exists=exists, may_write=lambda: True
    )
    assert second == pairs


async def test_a_failed_copy_is_logged(capsys: pytest.CaptureFixture[str]) -> None:
    engine = FakeEngine(fail=True)
    engine.release.set()
    replicator = Replicator(lambda *_: engine)
    checked = await replicas.resync_known_replicas(
        replicator, [("ds", "cloud-a")], exists=lambda *_: True, may_write=lambda: True
    )
    assert checked == [("ds", "cloud-a")]
    out = capsys.readouterr().out
    assert "replica_resync_failed" in out
    assert "boom" in out
    assert "next try after" in out, "the error says when the replica is tried again"
    assert "first sync.interval after the replica's backoff" in out  # was: "the next"


async def test_the_loop_resyncs_every_sync_interval_and_publishes_the_lag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = sandbox(tmp_path)
    slept: list[float] = []

    async def one_round(seconds: float, stop: asyncio.Event) -> bool:
        slept.append(seconds)
        return len(slept) == 1

    monkeypatch.setattr(loops, "_sleep", one_round)
    monkeypatch.setattr(
        loops, "replica_exists", lambda stores, d, c: (d, c) == ("wikitext", "cloud-b")
    )
    replicator = Replicator(Engines(), clock=lambda: 160.0)
    parts: Any = SimpleNamespace(
        holder=SimpleNamespace(config=config),
        stores=SimpleNamespace(config=config, cloud_clusters=lambda: ["cloud-a", "cloud-b"]),
        replicator=replicator,
        writes_allowed=lambda: True,
        federation=SimpleNamespace(settings=SimpleNamespace(draining_clusters=frozenset())),
    )
    await loops.resync_replicas(parts, asyncio.Event())
    assert slept == [30.0, 30.0]  # config/sandbox.yaml: sync.interval: 30s
    lag = metrics.SYNC_LAG_SECONDS.labels(dataset="wikitext", cluster="cloud-b")
    assert lag._value.get() == 60.0  # listed at t=100 by the fake engine


def test_a_replica_exists_when_its_location_lists_an_object(tmp_path: Path) -> None:
    config = sandbox(tmp_path)
    asked: list[dict[str, Any]] = []

    class Client:
        def __init__(self, count: int) -> None:
            self.count = count

        def list_objects_v2(self, **request: Any) -> dict[str, Any]:
            asked.append(request)
            return {"KeyCount": self.count}

    def stores(count: int) -> Any:
        return SimpleNamespace(
            config=config,
            location=lambda cluster, uri, where: SimpleNamespace(
                bucket=uri.split("/")[2], prefix=uri.split("/", 3)[3]
            ),
            client=lambda cluster: Client(count),
        )

    assert replicas.replica_exists(stores(1), "wikitext", "cloud-a")
    assert not replicas.replica_exists(stores(0), "imagenet-mini", "cloud-b")
    assert asked == [
        {"Bucket": "cloud-a-datasets", "Prefix": "text/wikitext/", "MaxKeys": 1},
        {"Bucket": "cloud-b-datasets", "Prefix": "imagenet-mini/", "MaxKeys": 1},
    ]


async def test_a_draining_cloud_s_replicas_are_not_refreshed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review of 2026-12-01: a draining cloud takes no new job, so refreshing its replicas
    only paid transfers until it was removed."""
    config = sandbox(tmp_path)
    rounds: list[float] = []

    async def one_round(seconds: float, stop: asyncio.Event) -> bool:
        rounds.append(seconds)
        return len(rounds) == 1

    monkeypatch.setattr(loops, "_sleep", one_round)
    monkeypatch.setattr(loops, "replica_exists", lambda stores, d, c: True)
    engines = Engines()
    parts: Any = SimpleNamespace(
        holder=SimpleNamespace(config=config),
        stores=SimpleNamespace(config=config, cloud_clusters=lambda: ["cloud-a", "cloud-b"]),
        replicator=Replicator(engines, clock=lambda: 160.0),
        writes_allowed=lambda: True,
        federation=SimpleNamespace(settings=SimpleNamespace(draining_clusters={"cloud-b"})),
    )
    await loops.resync_replicas(parts, asyncio.Event())
    clusters = {cluster for _, cluster in engines.made}
    assert clusters == {"cloud-a"}
