"""The model registry on the sandbox's real S3 servers: publish, race, aliases, sync back."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from federator import cli
from federator.policy import load_policy
from federator.sandbox import SandboxEnv
from federator.storage.endpoints import Endpoint, Location
from federator.storage.registry import (
    AliasConflict,
    ModelRegistry,
    VersionExists,
    sync_back,
)
from federator.storage.stores import Stores
from federator.syncing import manifests, modelsync
from federator.syncing.modelsync import RoundResult

pytestmark = pytest.mark.sandbox

MiB = 1024 * 1024
REPO = Path(__file__).resolve().parents[2]


def registry_on(sandbox: SandboxEnv, store: str, bucket: str) -> ModelRegistry:
    entry = sandbox.store(store)
    endpoint = Endpoint(
        store, entry["endpoint"], entry["access_key_id"], entry["secret_access_key"]
    )
    # Small parts so a 12 MiB file exercises the multipart paths.
    return ModelRegistry(Location(endpoint, bucket, "registry/"), part_size=5 * MiB)


@pytest.fixture(params=["cloud-a", "cloud-b"])
def staging_and_registry(
    request: pytest.FixtureRequest, sandbox: SandboxEnv, bucket_factory: Callable[..., str]
) -> tuple[ModelRegistry, ModelRegistry]:
    cloud = request.param
    return (
        registry_on(sandbox, cloud, bucket_factory(cloud, prefix="staging")),
        registry_on(sandbox, "onprem", bucket_factory("onprem", prefix="registry")),
    )


def files(tmp_path: Path, **sizes: int) -> dict[str, Path]:
    made = {}
    for name, size in sizes.items():
        path = tmp_path / f"{name}-{os.urandom(4).hex()}.bin"
        path.write_bytes(os.urandom(size))
        made[f"{name}.bin"] = path
    return made


def test_a_version_published_in_a_cloud_syncs_back_verified_and_a_rerun_copies_nothing(
    staging_and_registry: tuple[ModelRegistry, ModelRegistry], tmp_path: Path
) -> None:
    staging, onprem = staging_and_registry
    published = staging.publish(
        "llama-ft", "1", files(tmp_path, weights=12 * MiB, config=100), metadata={"run": "r1"}
    )
    assert staging.verify("llama-ft", "1").ok

    report = sync_back(staging, onprem)
    assert report.versions_copied == ("llama-ft@1",)
    assert report.blobs_copied == 2
    assert report.failures == ()
    assert onprem.manifest("llama-ft", "1").files == published.files
    assert onprem.verify("llama-ft", "1").ok

    again = sync_back(staging, onprem)
    assert again.versions_copied == ()
    assert again.versions_present == 1


def test_two_publishers_racing_for_one_version_exactly_one_wins(
    staging_and_registry: tuple[ModelRegistry, ModelRegistry],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    staging, _ = staging_and_registry
    barrier = threading.Barrier(2)
    original = ModelRegistry._put_manifest

    def put_together(self: ModelRegistry, manifest: manifests.Manifest) -> None:
        barrier.wait(timeout=30)  # both have their blobs up; now both write the manifest
        original(self, manifest)

    monkeypatch.setattr(ModelRegistry, "_put_manifest", put_together)
    candidates = [files(tmp_path, weights=1000), files(tmp_path, weights=1000)]

    def publish(chosen: dict[str, Path]) -> str:
        try:
            staging.publish("racy", "7", chosen)
        except VersionExists as error:
            return f"lost: {error}"
        return "won"

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(publish, candidates))
    assert sorted(o.split(":")[0] for o in outcomes) == ["lost", "won"]
    assert "already published" in next(o for o in outcomes if o.startswith("lost"))
    winner = candidates[outcomes.index("won")]
    digest = staging.manifest("racy", "7").files[0].digest
    assert digest == _sha256(winner["weights.bin"])


def test_publishing_the_same_files_again_is_idempotent(
    staging_and_registry: tuple[ModelRegistry, ModelRegistry], tmp_path: Path
) -> None:
    staging, _ = staging_and_registry
    chosen = files(tmp_path, weights=1000)
    first = staging.publish("same", "1", chosen)
    assert staging.publish("same", "1", chosen).files == first.files


def test_an_alias_moves_only_from_the_version_the_mover_saw(
    staging_and_registry: tuple[ModelRegistry, ModelRegistry], tmp_path: Path
) -> None:
    _, onprem = staging_and_registry
    for version in ("1", "2", "3"):
        onprem.publish("m", version, files(tmp_path, w=100))
    onprem.move_alias("m", "latest", "1", expected=None)
    with pytest.raises(AliasConflict):
        onprem.move_alias("m", "latest", "2", expected=None)
    movers = [("2", "1"), ("3", "1")]  # both saw 1; only one may move it

    def move(target_and_expected: tuple[str, str]) -> bool:
        try:
            onprem.move_alias("m", "latest", target_and_expected[0], expected="1")
        except AliasConflict:
            return False
        return True

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(move, movers))
    assert results.count(True) == 1
    assert onprem.manifest("m", "@latest").version == movers[results.index(True)][0]


def test_checkpoints_sync_back_and_seed_a_new_cloud_from_the_latest(
    sandbox: SandboxEnv, bucket_factory: Callable[..., str], tmp_path: Path
) -> None:
    cloud_a = registry_on(sandbox, "cloud-a", bucket_factory("cloud-a", prefix="staging"))
    onprem = registry_on(sandbox, "onprem", bucket_factory("onprem", prefix="registry"))
    cloud_b = registry_on(sandbox, "cloud-b", bucket_factory("cloud-b", prefix="staging"))
    for step in (100, 200):
        cloud_a.publish_checkpoint("team-a/train-1", step, files(tmp_path, ckpt=2000))
    sync_back(cloud_a, onprem)
    latest = onprem.latest_checkpoint("team-a/train-1")
    assert latest is not None
    assert latest.metadata["step"] == "200"
    # The job is re-placed on cloud-b after a preemption: it resumes from the latest.
    cloud_b.receive_version(onprem, latest.name, latest.version)
    resumed = cloud_b.latest_checkpoint("team-a/train-1")
    assert resumed is not None
    assert resumed.files == latest.files
    assert cloud_b.verify(resumed.name, resumed.version).ok


def test_verify_reports_a_damaged_blob(
    staging_and_registry: tuple[ModelRegistry, ModelRegistry], tmp_path: Path
) -> None:
    staging, _ = staging_and_registry
    manifest = staging.publish("m", "1", files(tmp_path, w=5000))
    key = staging.location.key(manifests.blob_key(manifest.files[0].digest))
    staging.s3.put_object(Bucket=staging.location.bucket, Key=key, Body=os.urandom(5000))
    result = staging.verify("m", "1")
    assert not result.ok
    assert "hashes to" in result.problems[0]


def test_the_cli_lists_shows_and_verifies_versions(
    sandbox: SandboxEnv,
    bucket_factory: Callable[..., str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    registry_bucket = bucket_factory("onprem", prefix="registry")
    config = policy_copy(sandbox, tmp_path, registry=f"s3://{registry_bucket}/registry/")
    weights = tmp_path / "weights.bin"
    weights.write_bytes(os.urandom(3000))
    base = ["registry", "--config", str(config)]
    assert cli.main([*base, "publish", "bert", "1", f"weights.bin={weights}"]) == 0
    assert cli.main([*base, "alias", "bert", "latest", "1"]) == 0
    assert cli.main([*base, "list"]) == 0
    assert "bert" in capsys.readouterr().out
    assert cli.main([*base, "show", "bert", "@latest"]) == 0
    assert "weights.bin" in capsys.readouterr().out
    assert cli.main([*base, "verify", "bert", "1"]) == 0
    assert "ok" in capsys.readouterr().out
    assert cli.main([*base, "show", "bert", "9"]) == 2
    assert "has no version '9'" in capsys.readouterr().err


def test_the_cli_syncs_a_dataset_with_a_dry_run_first(
    sandbox: SandboxEnv,
    bucket_factory: Callable[..., str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source, replica = bucket_factory("onprem", prefix="ds"), bucket_factory("cloud-b", prefix="ds")
    config = policy_copy(
        sandbox, tmp_path, dataset=(f"s3://{source}/shards/", f"s3://{replica}/shards/")
    )
    s3: Any = sandbox.boto3_client("onprem")
    for i in range(5):
        s3.put_object(Bucket=source, Key=f"shards/{i}", Body=os.urandom(100))
    base = ["sync", "--config", str(config), "dataset", "clitest", "--to", "cloud-b"]
    assert cli.main([*base, "--dry-run"]) == 0
    assert "copy 5 object(s)" in capsys.readouterr().err
    assert sandbox.boto3_client("cloud-b").list_objects_v2(Bucket=replica).get("KeyCount") == 0
    assert cli.main(base) == 0
    assert "copied 5 object(s)" in capsys.readouterr().err
    assert cli.main(base) == 0
    assert "5 already there" in capsys.readouterr().err


async def test_the_daemon_loop_brings_checkpoints_back_and_seeds_a_re_placed_job(
    sandbox: SandboxEnv, bucket_factory: Callable[..., str], tmp_path: Path
) -> None:
    buckets = {
        "onprem": bucket_factory("onprem", prefix="registry"),
        "cloud-a": bucket_factory("cloud-a", prefix="staging"),
        "cloud-b": bucket_factory("cloud-b", prefix="staging"),
    }
    config = policy_copy(
        sandbox,
        tmp_path,
        registry=f"s3://{buckets['onprem']}/registry/",
        staging={c: f"s3://{buckets[c]}/staging/" for c in ("cloud-a", "cloud-b")},
    )
    stores = Stores(load_policy(config))
    stores.staging("cloud-a").publish_checkpoint("job-1", 5, files(tmp_path, ckpt=3000))
    stop = asyncio.Event()
    rounds: list[list[RoundResult]] = []

    def after_round(results: list[RoundResult]) -> None:
        rounds.append(results)
        stop.set()

    await modelsync.keep_models_synced(
        stores, ["cloud-a", "cloud-b"], interval_s=60, stop=stop, on_round=after_round
    )
    copied = {r.cluster: r.versions_copied for r in rounds[0]}
    assert copied == {"cloud-a": ("checkpoints/job-1@000000000005",), "cloud-b": ()}
    assert await modelsync.seed_latest_checkpoint(stores, "job-1", "cloud-b") == "000000000005"
    seeded = stores.staging("cloud-b").latest_checkpoint("job-1")
    assert seeded is not None
    assert seeded.metadata["step"] == "5"


def policy_copy(
    sandbox: SandboxEnv,
    tmp_path: Path,
    *,
    registry: str | None = None,
    dataset: tuple[str, str] | None = None,
    staging: dict[str, str] | None = None,
) -> Path:
    """The sandbox policy with absolute paths, a fresh registry or an extra dataset."""
    text = (REPO / "config" / "sandbox.yaml").read_text()
    text = text.replace("../.sandbox/", f"{sandbox.root}/").replace(
        "../../shared/", f"{REPO.parent / 'shared'}/"
    )
    if registry is not None:
        text = text.replace("uri: s3://onprem-models/registry/", f"uri: {registry}")
    for cluster, uri in (staging or {}).items():
        text = text.replace(f"{cluster}: s3://{cluster}-models/staging/", f"{cluster}: {uri}")
    if dataset is not None:
        text = text.replace(
            "datasets:\n",
            f"datasets:\n  - name: clitest\n    source: {dataset[0]}\n"
            f"    replicas:\n      cloud-b: {dataset[1]}\n",
            1,
        )
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


def _sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_shutdown_stops_a_blob_between_parts_and_leaves_no_upload_open(
    staging_and_registry: tuple[ModelRegistry, ModelRegistry], tmp_path: Path
) -> None:
    """SIGTERM while a model syncs back: the blob in flight stops at its next part, its
    multipart upload is aborted (nothing open, nothing visible), and the next round — in a
    new process, here a new registry object — publishes the version whole."""
    staging, onprem = staging_and_registry
    staging.publish("bert", "1", files(tmp_path, weights=30 * MiB))

    class StopAfterFirstPart(ModelRegistry):
        def _upload_part(self, key: str, upload_id: str, number: int, chunk: bytes) -> str:
            etag = super()._upload_part(key, upload_id, number, chunk)
            self.stopping.set()  # the daemon's SIGTERM arrives while part 1 is sent
            return etag

    # One part at a time, so "after part 1" is a fixed point (at most one more is buffered).
    stopping = StopAfterFirstPart(onprem.location, part_size=5 * MiB, part_concurrency=1)
    report = sync_back(staging, stopping)
    assert report.versions_copied == ()
    ((version, why),) = report.failures
    assert version == "bert@1"
    assert why.startswith("RegistryStopped:"), why
    assert "stopped at part" in why
    open_uploads = onprem.s3.list_multipart_uploads(Bucket=onprem.location.bucket)
    assert not open_uploads.get("Uploads"), "the cut-short upload was aborted"
    assert onprem.versions("bert") == []

    report = sync_back(staging, onprem)
    assert report.versions_copied == ("bert@1",)
    assert onprem.verify("bert", "1").ok
