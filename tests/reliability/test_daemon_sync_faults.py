"""The real daemon (`federator run`) stopped while it moves data, and a store's keys rotated
under it (issue 9: "SIGKILL repeatedly while syncing and publishing; SIGTERM during a multipart
upload"; "credentials rotated while running"; anchors R12, R15).

Scenarios:
- a bursted job's dataset (a 320 MiB multipart object and a few small ones) is being copied to
  cloud-a through the fault proxy in SLOW mode; once an upload is open at the target and 40 MiB
  have gone through, the daemon gets SIGTERM (it must exit within 25 s) or SIGKILL, and is
  started again. Expected: an upload left open is one the sync state records (so the restart
  resumes it instead of starting over), nothing partial is ever visible at a final key, the
  replica ends equal to the source (SHA-256 of every object, read back with plain boto3), and
  the job runs exactly once;
- a model version (a 200 MiB blob) is being synced back from cloud-a's staging registry to the
  on-prem registry through the slowed proxy when the daemon is SIGKILLed; after a restart the
  version is published exactly once, every blob hashes to its name, no upload is left open;
- the keys of cloud-a's store (a SeaweedFS of the scenario's own, so the shared stores' keys
  never change) are rotated: the server restarts with a new identity, the credentials file is
  rewritten; the SAME daemon process syncs the next model version back with the new keys, and
  a copy engine built before the rotation (lean path included) copies with them too.

Triggers are progress (open uploads, bytes through the proxy), never a timer. Invariants are
read from outside: plain boto3 for objects, `tests/invariants.py` for jobs.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from federator import policy
from federator.sandbox import SandboxEnv
from federator.storage.endpoints import Endpoint, Location
from federator.storage.registry import ModelRegistry
from federator.storage.stores import Stores
from federator.syncing import manifests
from tests import federation_harness as harness
from tests import invariants
from tests.reliability import checks
from tests.support import configs
from tests.support.daemon import Daemon
from tests.support.faultproxy import FaultProxy, Mode
from tests.support.s3server import OwnSeaweed
from tests.support.stores import sandbox_endpoint

# No automatic rerun (tests/conftest.py gives sandbox tests one): each scenario takes minutes
# and its figures (exit time, bytes re-sent) must come from the one run that is reported.
pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.slow,
    pytest.mark.timeout(900),
    pytest.mark.flaky(reruns=0),
]

MiB = 1024 * 1024
BIG = 320 * MiB  # the dataset's multipart object: 40 parts of 8 MiB
BLOB = 200 * MiB  # the model version's large blob
SLOW = 2_000_000  # bytes/s per proxied connection: an 8 MiB part takes about 4 s
TRIGGER = 40 * MiB  # bytes through the proxy before the stop: at least one part is complete
CLOUD_A_S3 = ("127.0.0.1", 18320)
ONPREM_S3 = ("127.0.0.1", 18310)
DATASETS_ANNOTATION = "federator.io/datasets"


def cloud(config: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in config["clusters"] if c["name"] == name)
    return found


def policy_copy(
    tmp_path: Path, namespace: str, *, edit: Callable[[dict[str, Any]], None]
) -> tuple[Path, str]:
    instance = f"rel-sync-{namespace[-8:]}"

    def scenario(config: dict[str, Any]) -> None:
        config["state_namespace"] = namespace
        config["leader_election"]["enabled"] = False
        config["garbage_collection"] = {"interval": "5s", "grace_period": "5s"}
        config["tenants"][0]["allowed_clusters"] = ["cloud-a"]
        config["residency"] = []
        config.pop("registry", None)
        edit(config)

    path = configs.scenario_config(
        tmp_path, instance=instance, namespaces=[namespace], edit=scenario
    )
    return path, instance


def random_file(path: Path, size: int) -> Path:
    with path.open("wb") as out:
        for _ in range(size // MiB):
            out.write(os.urandom(MiB))
    return path


def seed_dataset(client: Any, bucket: str, tmp_path: Path) -> dict[str, str]:
    """A 320 MiB object written in 8 MiB parts (the engine keeps the source's layout) and five
    small ones; returns relative key -> SHA-256, read back from the store."""
    layout = TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=8 * MiB)
    client.upload_file(str(random_file(tmp_path / "big.bin", BIG)), bucket, "bigset/big.bin",
                       Config=layout)  # fmt: skip
    for i in range(5):
        client.put_object(Bucket=bucket, Key=f"bigset/small/{i}", Body=os.urandom(256 * 1024))
    return checks.Place(client, bucket, "bigset/").digests()


def open_uploads(client: Any, bucket: str, prefix: str = "") -> dict[str, str]:
    """upload id -> key of every multipart upload open under the prefix."""
    listed = client.list_multipart_uploads(Bucket=bucket, Prefix=prefix)
    return {u["UploadId"]: u["Key"] for u in listed.get("Uploads", [])}


def recorded_uploads(client: Any, bucket: str) -> dict[str, str]:
    """upload id -> relative key of every upload the target's sync state records (plain boto3
    reads of `.federator/sync/*.json`, the engine's documented state format)."""
    found: dict[str, str] = {}
    listed = client.list_objects_v2(Bucket=bucket, Prefix=".federator/sync/")
    for entry in listed.get("Contents", []):
        state = json.loads(client.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read())
        for key, record in state.get("uploads", {}).items():
            found[record["upload_id"]] = key
    return found


async def wait_progress(
    check: Callable[[], bool], *, timeout_s: float, what: str, daemon: Daemon
) -> None:
    async def ready() -> bool:
        assert daemon.alive(), f"the daemon died:\n{daemon.log_text()[-3000:]}"
        return await asyncio.to_thread(check)

    await harness.wait_for(ready, timeout_s=timeout_s, interval_s=0.2, what=what)


# ---- a bursted job's dataset, stopped mid-upload ------------------------------------------------


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
async def test_daemon_stopped_during_a_multipart_upload_resumes_and_runs_the_job_once(
    stop: signal.Signals,
    sandbox: SandboxEnv,
    namespace_factory: Callable[..., str],
    bucket_factory: Callable[..., str],
    tmp_path: Path,
) -> None:
    namespace = namespace_factory("onprem", prefix="relsync", local_queue="q")
    src_bucket = bucket_factory("onprem", prefix="relsrc")
    dst_bucket = bucket_factory("cloud-a", prefix="reldst")
    src, dst = sandbox.boto3_client("onprem"), sandbox.boto3_client("cloud-a")
    expected = await asyncio.to_thread(seed_dataset, src, src_bucket, tmp_path)
    replica = checks.Place(dst, dst_bucket, "bigset/")
    apis = harness.apis(sandbox)
    sampler = invariants.Sampler(apis, frozenset({namespace}), interval_s=1.0)
    sampling = asyncio.create_task(sampler.run())
    with FaultProxy(upstream=CLOUD_A_S3) as proxy:

        def through_proxy(config: dict[str, Any]) -> None:
            cloud(config, "cloud-a")["object_store"]["endpoint"] = proxy.url
            config["datasets"] = [
                {
                    "name": "bigset",
                    "source": f"s3://{src_bucket}/bigset/",
                    "replicas": {"cloud-a": f"s3://{dst_bucket}/bigset/"},
                    "size_hint": "322Mi",
                }
            ]

        config, instance = policy_copy(tmp_path, namespace, edit=through_proxy)
        proxy.set_mode(Mode.SLOW, bytes_per_s=SLOW)
        daemon = Daemon(config, tmp_path / "d.log").start()
        try:
            # The previous scenario's 900 s blockers may still hold the shared queue while
            # their namespace is torn down; with 8 GPUs of it freed late, the trainer would
            # start on-prem and never need its data (seen once in the full suite).
            await harness.wait_for(
                lambda: harness.onprem_queue_empty(apis["onprem"]),
                timeout_s=180,
                what="the on-prem queue to be free of earlier scenarios' jobs",
            )
            # Blockers outlast the scenario: with room on-prem the daemon would pull the job
            # back (its copy waits for data) and the data would never have to arrive.
            await harness.fill_onprem(apis["onprem"], namespace, queue="q", seconds=900)
            job = harness.gpu_job("trainer", namespace, gpus=8, seconds=20, queue="q",
                                  annotations={DATASETS_ANNOTATION: "bigset"})  # fmt: skip
            await apis["onprem"].apply(job)
            await wait_progress(
                lambda: bool(replica.open_uploads()) and proxy.stats.bytes_up > TRIGGER,
                timeout_s=300,
                what="a multipart upload in flight at the target",
                daemon=daemon,
            )
            sent_at_stop = proxy.stats.bytes_up
            daemon.signal(stop)
            assert daemon.process is not None
            exit_s = checks.wait_exit(daemon.process, within_s=120.0)
            exit_code = daemon.process.returncode
            left = open_uploads(dst, dst_bucket, "bigset/")
            recorded = recorded_uploads(dst, dst_bucket)
            checks.check_no_partial_object(replica, expected)
            proxy.set_mode(Mode.PASS)
            sent_at_restart = proxy.stats.bytes_up
            daemon = Daemon(config, tmp_path / "d.log").start()

            async def trainer_done() -> bool:
                found = await apis["onprem"].get("Job", "trainer", namespace)
                return found is not None and harness.finished(found)

            await harness.wait_for(trainer_done, timeout_s=420, what="the trainer to finish")
            resent = proxy.stats.bytes_up - sent_at_restart
            trainer = await apis["onprem"].get("Job", "trainer", namespace)
            assert trainer is not None
            await invariants.wait_no_orphans(apis, [namespace], instance, timeout_s=120)
        finally:
            daemon.stop()
            await invariants.cancel(sampling)
            await harness.delete_cloud_namespaces(sandbox, [namespace])
    print(
        f"\n{stop.name}: {sent_at_stop / MiB:.0f} MiB through the proxy at the stop; exit in "
        f"{exit_s:.1f} s (code {exit_code}); uploads left {len(left)}, recorded "
        f"{len(set(left) & set(recorded))}; re-sent after restart {resent / MiB:.0f} MiB of "
        f"{BIG / MiB:.0f} MiB; record {invariants.record_of(trainer)}; "
        f"{len(sampler.samples)} samples"
    )
    if stop is signal.SIGTERM:
        assert exit_s <= 25.0, f"SIGTERM mid-upload took {exit_s:.1f} s to exit (promise: 25 s)"
        assert exit_code == 0, daemon.log_text()[-3000:]
    unrecorded = {uid: key for uid, key in left.items() if uid not in recorded}
    assert not unrecorded, f"uploads left open that no sync state records: {unrecorded}"
    assert invariants.record_of(trainer), "the job must have been bursted (the data must move)"
    checks.check_replica_equals(expected, replica)
    invariants.check_one_terminal_state([trainer])
    invariants.check_never_two_running(sampler)
    if left:
        assert resent < BIG - 8 * MiB, "a recorded upload must be resumed, not sent again whole"


# ---- a model version synced back, SIGKILL mid-blob ---------------------------------------------


def registry_state(client: Any, bucket: str, prefix: str, name: str) -> dict[str, Any]:
    """What a plain reader sees in a registry: versions of `name`, each blob's verdict."""
    versions = sorted(
        parsed[1]
        for entry in client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
        if (parsed := manifests.parse_manifest_key(entry["Key"][len(prefix) :])) is not None
        and parsed[0] == name
    )
    problems: list[str] = []
    for version in versions:
        key = prefix + manifests.manifest_key(name, version)
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        for entry in manifests.decode(body, where=key).files:
            problems += blob_problems(client, bucket, prefix, entry)
    return {"versions": versions, "problems": problems}


def blob_problems(client: Any, bucket: str, prefix: str, entry: manifests.FileEntry) -> list[str]:
    key = prefix + manifests.blob_key(entry.digest)
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
    except ClientError as error:
        return [f"{entry.path}: blob missing ({error.response['Error']['Code']})"]
    sha, size = hashlib.sha256(), 0
    for chunk in iter(lambda: body.read(MiB), b""):
        sha.update(chunk)
        size += len(chunk)
    if (sha.hexdigest(), size) != (entry.hex, entry.size):
        return [f"{entry.path}: blob has other bytes than its name says"]
    return []


def visible_blobs_are_whole(client: Any, bucket: str, prefix: str) -> None:
    """Every object at a blob key hashes to its name: nothing partial at a final key."""
    blobs = prefix + "blobs/sha256/"
    for entry in client.list_objects_v2(Bucket=bucket, Prefix=blobs).get("Contents", []):
        digest = entry["Key"][len(blobs) :]
        body = client.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read()
        assert hashlib.sha256(body).hexdigest() == digest, f"partial blob at {entry['Key']}"


def publish(
    registry_at: Location, client: Any, name: str, version: str, files: dict[str, Path]
) -> manifests.Manifest:
    """What a job in the cloud does: publish a version to its staging registry."""
    return ModelRegistry(registry_at, client, part_size=8 * MiB).publish(name, version, files)


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
async def test_daemon_stopped_while_syncing_back_a_model_version_publishes_it_once(
    stop: signal.Signals,
    sandbox: SandboxEnv,
    namespace_factory: Callable[..., str],
    bucket_factory: Callable[..., str],
    tmp_path: Path,
) -> None:
    namespace = namespace_factory("onprem", prefix="relmodel", local_queue="q")
    registry_bucket = bucket_factory("onprem", prefix="relreg")
    staging_a = bucket_factory("cloud-a", prefix="relstga")
    staging_b = bucket_factory("cloud-b", prefix="relstgb")
    onprem, cloud_a = sandbox.boto3_client("onprem"), sandbox.boto3_client("cloud-a")
    files = {
        "weights.bin": random_file(tmp_path / "weights.bin", BLOB),
        "config.json": tmp_path / "config.json",
    }
    files["config.json"].write_text(json.dumps({"layers": 12, "seed": os.urandom(8).hex()}))
    staging = Location(sandbox_endpoint(sandbox, "cloud-a"), staging_a, "staging/")
    await asyncio.to_thread(publish, staging, cloud_a, "bert", "v1", files)
    with FaultProxy(upstream=ONPREM_S3) as proxy:

        def registry_through_proxy(config: dict[str, Any]) -> None:
            cloud(config, "onprem")["object_store"]["endpoint"] = proxy.url
            config["registry"] = {
                "uri": f"s3://{registry_bucket}/registry/",
                "staging": {
                    "cloud-a": f"s3://{staging_a}/staging/",
                    "cloud-b": f"s3://{staging_b}/staging/",
                },
                "checkpoint_sync_interval": "2s",
            }

        config, _ = policy_copy(tmp_path, namespace, edit=registry_through_proxy)
        proxy.set_mode(Mode.SLOW, bytes_per_s=SLOW)
        daemon = Daemon(config, tmp_path / "d.log").start()
        try:
            await wait_progress(
                lambda: (
                    bool(open_uploads(onprem, registry_bucket)) and proxy.stats.bytes_up > TRIGGER
                ),
                timeout_s=300,
                what="the blob's upload in flight at the on-prem registry",
                daemon=daemon,
            )
            sent_at_kill = proxy.stats.bytes_up
            daemon.signal(stop)
            assert daemon.process is not None
            exit_s = checks.wait_exit(daemon.process, within_s=120.0)
            exit_code = daemon.process.returncode
            at_kill = registry_state(onprem, registry_bucket, "registry/", "bert")
            left_at_kill = open_uploads(onprem, registry_bucket)
            visible_blobs_are_whole(onprem, registry_bucket, "registry/")
            proxy.set_mode(Mode.PASS)
            started = time.monotonic()
            daemon = Daemon(config, tmp_path / "d.log").start()
            await wait_progress(
                lambda: (
                    registry_state(onprem, registry_bucket, "registry/", "bert")["versions"]
                    == ["v1"]
                ),
                timeout_s=240,
                what="the version published on-prem after the restart",
                daemon=daemon,
            )
            published_s = time.monotonic() - started
        finally:
            daemon.stop()
    final = registry_state(onprem, registry_bucket, "registry/", "bert")
    left = open_uploads(onprem, registry_bucket)
    print(
        f"\n{stop.name} at {sent_at_kill / MiB:.0f} MiB through the proxy, exit {exit_code} in "
        f"{exit_s:.1f} s; then: versions "
        f"{at_kill['versions']}, uploads open {len(left_at_kill)}; published {published_s:.1f} s "
        f"after the restart; final versions {final['versions']}, blob problems "
        f"{final['problems']}, uploads left open {len(left)}"
    )
    assert at_kill["versions"] == [], "no manifest may be visible before its blobs"
    if stop is signal.SIGTERM:  # issue 8: within 25 s, uploads recorded or aborted
        assert exit_code == 0
        assert exit_s <= 25.0, f"SIGTERM took {exit_s:.1f} s"
        assert not left_at_kill, "a stopped blob's upload is aborted, not left open"
    assert final["versions"] == ["v1"], "the version is published exactly once"
    assert not final["problems"], final["problems"]
    assert not left, f"multipart uploads left open at the registry: {sorted(left.values())}"


# ---- keys rotated under a running daemon --------------------------------------------------------


def write_keys(path: Path, keys: tuple[str, str]) -> None:
    """As an operator's tooling (or the kubelet for a mounted Secret) does: write, then rename."""
    staged = path.with_suffix(".new")
    staged.write_text(json.dumps({"access_key_id": keys[0], "secret_access_key": keys[1]}))
    staged.replace(path)


def new_keys() -> tuple[str, str]:
    return f"ROT{os.urandom(8).hex().upper()}", os.urandom(20).hex()


def rotated_store_policy(
    store_url: str,
    credentials: dict[str, Any],
    *,
    registry_bucket: str,
    staging_b: str,
    source_bucket: str,
) -> Callable[[dict[str, Any]], None]:
    """The policy edit of the key-rotation scenarios: cloud-a's store is the scenario's own
    (bucket `rotated`, keys from `credentials`), with a registry staging area and a dataset
    `rotset` replicated there."""

    def edit(config: dict[str, Any]) -> None:
        cloud(config, "cloud-a")["object_store"]["endpoint"] = store_url
        cloud(config, "cloud-a")["object_store"]["credentials"] = credentials
        config["registry"] = {
            "uri": f"s3://{registry_bucket}/registry/",
            "staging": {
                "cloud-a": "s3://rotated/staging/",
                "cloud-b": f"s3://{staging_b}/staging/",
            },
            "checkpoint_sync_interval": "2s",
        }
        config["datasets"] = [
            {
                "name": "rotset",
                "source": f"s3://{source_bucket}/rotset/",
                "replicas": {"cloud-a": "s3://rotated/rotset/"},
            }
        ]

    return edit


async def test_rotated_store_keys_are_used_without_a_restart(
    sandbox: SandboxEnv,
    namespace_factory: Callable[..., str],
    bucket_factory: Callable[..., str],
    tmp_path: Path,
) -> None:
    namespace = namespace_factory("onprem", prefix="relrot", local_queue="q")
    registry_bucket = bucket_factory("onprem", prefix="relreg")
    staging_b = bucket_factory("cloud-b", prefix="relstgb")
    source_bucket = bucket_factory("onprem", prefix="relsrc")
    onprem = sandbox.boto3_client("onprem")
    old, new = new_keys(), new_keys()
    keys_file = tmp_path / "cloud-a-keys.json"
    write_keys(keys_file, old)
    small = {"model.bin": random_file(tmp_path / "model.bin", 2 * MiB)}
    with OwnSeaweed(tmp_path / "own-s3", *old) as store:
        await asyncio.to_thread(store.client().create_bucket, Bucket="rotated")
        staging = Location(
            Endpoint("cloud-a", store.url, access_key_id=old[0], secret_access_key=old[1]),
            "rotated",
            "staging/",
        )
        await asyncio.to_thread(publish, staging, store.client(), "gpt", "v1", small)

        own_store = rotated_store_policy(
            store.url,
            {"file": str(keys_file)},
            registry_bucket=registry_bucket,
            staging_b=staging_b,
            source_bucket=source_bucket,
        )
        config, _ = policy_copy(tmp_path, namespace, edit=own_store)
        # The copy engine as the daemon builds it (Stores), made before the rotation.
        stores = Stores(policy.load_policy(config))
        copier = stores.dataset_copier("rotset", "cloud-a")
        onprem.put_object(Bucket=source_bucket, Key="rotset/a", Body=os.urandom(3 * MiB))
        first_copy = await asyncio.to_thread(copier.run)
        daemon = Daemon(config, tmp_path / "d.log").start()
        try:

            def published(version: str) -> bool:
                state = registry_state(onprem, registry_bucket, "registry/", "gpt")
                return version in state["versions"]

            await wait_progress(lambda: published("v1"), timeout_s=120, what="v1 synced back",
                                daemon=daemon)  # fmt: skip
            pid = daemon.pid
            await asyncio.to_thread(store.rotate, *new)
            write_keys(keys_file, new)
            rotated_at = time.monotonic()
            with pytest.raises(ClientError) as refused:
                await asyncio.to_thread(store.client(old).list_buckets)
            staging_new = Location(
                Endpoint("cloud-a", store.url, access_key_id=new[0], secret_access_key=new[1]),
                "rotated",
                "staging/",
            )
            await asyncio.to_thread(publish, staging_new, store.client(new), "gpt", "v2", small)
            await wait_progress(lambda: published("v2"), timeout_s=90, what="v2 synced back",
                                daemon=daemon)  # fmt: skip
            took_s = time.monotonic() - rotated_at
            same_process = daemon.alive() and daemon.pid == pid
            onprem.put_object(Bucket=source_bucket, Key="rotset/b", Body=os.urandom(20 * MiB))
            second_copy = await asyncio.to_thread(copier.run)
            replica = checks.Place(store.client(new), "rotated", "rotset/")
            expected = checks.Place(onprem, source_bucket, "rotset/").digests()
            checks.check_replica_equals(expected, replica)
        finally:
            daemon.stop()
    final = registry_state(onprem, registry_bucket, "registry/", "gpt")
    print(
        f"\nold keys refused with {refused.value.response['Error']['Code']}; v2 synced back "
        f"{took_s:.1f} s after the key file was rewritten, same process: {same_process}; "
        f"copies with one engine: before {first_copy.copied} ok={first_copy.ok}, after "
        f"{second_copy.copied} ok={second_copy.ok}; registry {final}"
    )
    assert first_copy.ok, first_copy.failures
    assert second_copy.ok, second_copy.failures
    assert second_copy.copied == 1
    assert same_process, "the rotation must take effect without a restart"
    assert final["versions"] == ["v1", "v2"]
    assert not final["problems"], final["problems"]
