"""Datasets added, moved or removed by a policy reload are followed without a restart: the
daemon as `_assemble` wires it (real `Stores`, `Replicator`, data gate and cloud settings), with
fake cluster clients and a copy engine whose listing is faked (no store is reached)."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from federator import errors, metrics, web
from federator.daemon import assembly, loops, policy_file, reloading, replicas, serving
from federator.storage.copying import DatasetCopier
from federator.syncing.plans import ListedObject, SyncPlan, SyncReport, plan_sync
from tests.support import configs


@dataclass
class Stores:
    """What the faked engines were asked: (dataset's target as `cluster:s3://…`, its source,
    part size) per listing, and the listings of `replica_exists`."""

    planned: list[tuple[str, str, int]] = field(default_factory=list)
    listed: list[dict[str, Any]] = field(default_factory=list)
    source: list[ListedObject] = field(default_factory=list)  # every dataset's objects
    release: threading.Event = field(default_factory=threading.Event)
    runs: list[str] = field(default_factory=list)


@pytest.fixture
def stores(monkeypatch: pytest.MonkeyPatch) -> Stores:
    seen = Stores()
    seen.release.set()

    def plan(engine: DatasetCopier, state: Any = None) -> tuple[SyncPlan, float]:
        target, source = str(engine.target), str(engine.source)
        seen.planned.append((target, source, engine.settings.part_size))
        return plan_sync(seen.source, []), 100.0

    def run(engine: DatasetCopier, **_: Any) -> SyncReport:
        seen.runs.append(str(engine.target))
        plan, listed_at = plan_sync(seen.source, []), 100.0
        seen.release.wait(5)
        return SyncReport(plan, listed_at, dry_run=False, copied=len(plan.copies))

    class Client:
        def list_objects_v2(self, **request: Any) -> dict[str, Any]:
            seen.listed.append(request)
            return {"KeyCount": 1}

    monkeypatch.setattr(DatasetCopier, "plan", plan)
    monkeypatch.setattr(DatasetCopier, "run", run)
    monkeypatch.setattr("federator.storage.stores.Stores.client", lambda self, cluster: Client())
    return seen


class Daemon:
    """The assembled parts of a daemon started with the sandbox policy, and its policy file."""

    def __init__(self, tmp_path: Path, raw: dict[str, Any] | None = None) -> None:
        """`raw`: the policy as a dict; by default the sandbox's with keys of the test's own."""
        if raw is None:
            raw = configs.sandbox_config()
            configs.use_own_keys(raw, tmp_path)
        self.raw = raw
        self.path = tmp_path / "policy.yaml"
        self.path.write_text(yaml.safe_dump(self.raw))
        self.holder = policy_file.PolicyHolder(self.path)
        connected: Any = {
            c.name: SimpleNamespace(name=c.name, api=SimpleNamespace())
            for c in self.holder.config.clusters
        }
        # --once: the write fence is open without an election
        self.parts = assembly._assemble(self.holder, connected, None, dry_run=False, once=True)  # type: ignore[arg-type]

    async def reload(self, edit: Callable[[dict[str, Any]], None]) -> None:
        """Edit the policy file and let the config watcher reload it, as on SIGHUP."""
        edit(self.raw)
        self.path.write_text(yaml.safe_dump(self.raw))
        stop, hup = asyncio.Event(), asyncio.Event()
        reloaded = metrics.CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP_SECONDS._value
        rejected = metrics.CONFIG_RELOAD_FAILURES._value
        reloaded.set(0)
        rejections = rejected.get()
        hup.set()
        watcher = asyncio.create_task(reloading.watch_config(self.parts, stop, hup))
        while reloaded.get() == 0 and rejected.get() == rejections:  # noqa: ASYNC110 - the
            await asyncio.sleep(0.01)  # watcher sets no event of ours
        assert reloaded.get() != 0, "the edited policy was rejected"
        stop.set()
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)

    async def gate(self, dataset: str, cluster: str) -> bool:
        """The federation's data gate: may a job needing `dataset` start on `cluster`?"""
        data = self.parts.federation.data
        assert data is not None
        return (await data.ensure_replicated(dataset, cluster)).may_start


def add_speech(raw: dict[str, Any]) -> None:
    raw["datasets"].append({"name": "speech", "source": "s3://onprem-datasets/speech/"})


def move_wikitext(raw: dict[str, Any]) -> None:
    wikitext = next(d for d in raw["datasets"] if d["name"] == "wikitext")
    wikitext["replicas"]["cloud-a"] = "s3://cloud-a-datasets/nlp/wikitext/"


async def test_a_job_needing_a_dataset_added_by_a_reload_gets_its_replica_without_a_restart(
    tmp_path: Path, stores: Stores
) -> None:
    running = Daemon(tmp_path)
    await running.reload(add_speech)
    assert await running.gate("speech", "cloud-a")  # was: UserError, unknown dataset 'speech'
    assert stores.planned == [
        ("cloud-a:s3://cloud-a-datasets/speech/", "onprem:s3://onprem-datasets/speech/", 8 << 20)
    ]
    rewrites = running.parts.clouds["cloud-a"].settings.rewrites
    assert ("s3://onprem-datasets/speech/", "s3://cloud-a-datasets/speech/") in rewrites


async def test_a_dataset_moved_by_a_reload_is_checked_and_copied_at_its_new_location(
    tmp_path: Path, stores: Stores
) -> None:
    stores.source = [ListedObject("a", 100, "e1", 50.0)]
    running = Daemon(tmp_path)
    assert not await running.gate("wikitext", "cloud-a")  # copying to the old location
    await running.parts.replicator.sync_now("wikitext", "cloud-a")
    assert stores.runs == ["cloud-a:s3://cloud-a-datasets/text/wikitext/"]

    await running.reload(move_wikitext)
    assert not await running.gate("wikitext", "cloud-a"), (
        "the new location was never copied to: the job must wait (was: ready, the old one)"
    )
    await running.parts.replicator.sync_now("wikitext", "cloud-a")
    assert stores.runs[1:] == ["cloud-a:s3://cloud-a-datasets/nlp/wikitext/"]
    rewrites = running.parts.clouds["cloud-a"].settings.rewrites
    assert ("s3://onprem-datasets/wikitext/", "s3://cloud-a-datasets/nlp/wikitext/") in rewrites
    assert ("s3://onprem-models/staging/", "s3://cloud-a-models/staging/") in rewrites


async def test_a_reloaded_sync_section_builds_new_engines(tmp_path: Path, stores: Stores) -> None:
    running = Daemon(tmp_path)
    assert await running.gate("imagenet-mini", "cloud-b")

    def bigger_parts(raw: dict[str, Any]) -> None:
        raw["sync"]["part_size"] = "64Mi"

    await running.reload(bigger_parts)
    assert await running.gate("imagenet-mini", "cloud-b")
    assert [size for *_, size in stores.planned] == [8 << 20, 64 << 20]  # sandbox.yaml: 8Mi


async def test_the_resync_loop_covers_a_dataset_added_by_a_reload(
    tmp_path: Path, stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    running = Daemon(tmp_path)
    await running.reload(add_speech)
    rounds = iter([True, False])

    async def one_round(seconds: float, stop: asyncio.Event) -> bool:
        return next(rounds)

    monkeypatch.setattr(loops, "_sleep", one_round)
    await loops.resync_replicas(running.parts, asyncio.Event())
    assert {"Bucket": "cloud-b-datasets", "Prefix": "speech/", "MaxKeys": 1} in stores.listed
    targets = [target for target, *_ in stores.planned]
    assert "cloud-a:s3://cloud-a-datasets/speech/" in targets
    assert "cloud-b:s3://cloud-b-datasets/speech/" in targets


async def test_a_dataset_removed_by_a_reload_lets_its_copy_finish_and_is_then_unknown(
    tmp_path: Path, stores: Stores
) -> None:
    stores.source = [ListedObject("a", 100, "e1", 50.0)]
    stores.release.clear()
    running = Daemon(tmp_path)
    assert not await running.gate("wikitext", "cloud-b")  # its copy runs until released

    def remove_wikitext(raw: dict[str, Any]) -> None:
        raw["datasets"] = [d for d in raw["datasets"] if d["name"] != "wikitext"]

    await running.reload(remove_wikitext)
    stores.release.set()
    (copy,) = [t for t in asyncio.all_tasks() if t.get_name() == "sync:wikitext->cloud-b"]
    await asyncio.wait({copy})
    assert stores.runs == ["cloud-b:s3://cloud-b-datasets/wikitext/"]  # let finish, once
    assert running.parts.replicator.lags() == {}  # no lag series left to climb for ever
    with pytest.raises(errors.UserError, match="unknown dataset or cluster 'wikitext'"):
        await running.gate("wikitext", "cloud-b")
    assert stores.runs == ["cloud-b:s3://cloud-b-datasets/wikitext/"]
    pairs = replicas.replica_pairs(running.holder.config, running.parts.stores.config)
    assert all(dataset != "wikitext" for dataset, _ in pairs)


def add_cloud_c(raw: dict[str, Any]) -> None:
    cloud_b = next(c for c in raw["clusters"] if c["name"] == "cloud-b")
    cloud_c = copy.deepcopy(cloud_b) | {"name": "cloud-c"}
    cloud_c["object_store"]["datasets_uri"] = "s3://cloud-c-datasets/"
    cloud_c["object_store"]["models_uri"] = "s3://cloud-c-models/"
    raw["clusters"].append(cloud_c)


async def test_a_cloud_added_by_a_reload_is_said_to_need_a_restart_for_its_store(
    tmp_path: Path, stores: Stores
) -> None:
    running = Daemon(tmp_path)
    await running.reload(add_cloud_c)
    with pytest.raises(errors.UserError, match=r"clusters\.cloud-c: added by a reload; its object"):
        running.parts.stores.dataset_copier("wikitext", "cloud-c")
    assert await running.gate("wikitext", "cloud-b")  # the others are as before


async def test_the_resync_loop_leaves_out_a_cloud_added_by_a_reload_and_says_so_once(
    tmp_path: Path,
    stores: Stores,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    running = Daemon(tmp_path)
    await running.reload(add_cloud_c)
    rounds = iter([True, True, True, False])

    async def three_rounds(seconds: float, stop: asyncio.Event) -> bool:
        return next(rounds)

    monkeypatch.setattr(loops, "_sleep", three_rounds)
    await loops.resync_replicas(running.parts, asyncio.Event())
    out = capsys.readouterr().out
    assert "replica_resync_failed" not in out, "was: 2 datasets x 3 rounds on cloud-c"
    (warning,) = [line for line in out.splitlines() if "cloud_store_needs_restart" in line]
    assert "cloud-c" in warning
    assert "restart" in warning
    targets = {target.split(":")[0] for target, *_ in stores.planned}
    assert targets == {"cloud-a", "cloud-b"}, "the clouds with stores are re-synced as before"


async def test_a_daemon_started_without_datasets_runs_the_resync_loop_for_a_reload_to_fill(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = configs.sandbox_config()
    raw["datasets"] = []
    raw["residency"] = []
    raw["leader_election"]["enabled"] = False
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(raw))
    config = policy_file.PolicyHolder(path).config
    started: list[str] = []

    def loop(name: str) -> Callable[..., Any]:
        async def run(parts: Any, stop: asyncio.Event, *_: Any) -> None:
            started.append(name)
            if name == "federate":  # the first task: the others start before it goes on
                await asyncio.sleep(0)
                stop.set()
            await stop.wait()

        return run

    @contextlib.asynccontextmanager
    async def nothing(*_: Any) -> AsyncIterator[Any]:
        yield ("127.0.0.1", 0)

    for name in ("federate", "refresh_prices", "save_evidence", "watch_config"):
        monkeypatch.setattr(serving, name, loop(name))
    monkeypatch.setattr(serving, "sync_models_back", loop("models"))
    monkeypatch.setattr(serving, "resync_replicas", loop("replicas"))
    monkeypatch.setattr(serving, "_observing", nothing)
    monkeypatch.setattr(web, "serving", nothing)
    monkeypatch.setattr(serving, "_install_signals", lambda s, h: None)
    parts: Any = SimpleNamespace(
        holder=SimpleNamespace(config=config),
        clusters={"onprem": SimpleNamespace(api=None)},
        fence=SimpleNamespace(mark_lost=lambda **_: None),
        stores=SimpleNamespace(stop_transfers=lambda: None),
        decisions=None,
    )
    assert await serving._serve(parts, dry_run=False) == 0
    assert "replicas" in started  # was: no loop, so a dataset added later was never re-synced
