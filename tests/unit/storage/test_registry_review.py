"""Registry and replication faults a review found: each test fails on the code before its fix.

- an alias move whose reply was lost, retried into a 412, is a success, not a conflict;
- a blob larger than 10,000 registry parts is sent in bigger parts, not cut and called corrupt;
- checkpoints keep the job's namespace as its own segment, and long job names still fit;
- the daemon's replicator applies the deletes due and saves the hold-back clock.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError
from tenacity import wait_none

from federator.storage.endpoints import Endpoint, Location
from federator.storage.registry import AliasConflict, ModelRegistry
from federator.syncing import manifests
from federator.syncing import parts as partlib
from federator.syncing.manifests import FileEntry, Manifest
from federator.syncing.plans import DeletePolicy, ListedObject, SyncPlan, SyncReport, plan_sync
from federator.syncing.replication import ReplicaState, Replicator

MiB = 1024 * 1024
ONPREM = Endpoint("onprem", "http://10.9.8.7:8333", "id", "secret")
CLOUD = Endpoint("cloud-a", "http://10.9.8.8:8333", "id", "secret")


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """A retried registry write retries at once."""
    monkeypatch.setattr(vars(ModelRegistry._put)["retry"], "wait", wait_none())


def s3_error(status: int, code: str, operation: str) -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": code},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, operation)


class MemoryS3:
    """One bucket's objects in memory, with the conditional writes and multipart calls the
    registry makes; `lose_reply_of_put` drops the answer of that many writes it applied."""

    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, str]] = {}  # key -> (bytes, ETag)
        self.uploads: dict[str, dict[int, bytes]] = {}
        self.part_counts: dict[str, int] = {}
        self.ids = itertools.count(1)
        self.lose_reply_of_put = 0

    def put_object(
        self, *, Key: str, Body: bytes, IfNoneMatch: str | None = None, **kw: Any
    ) -> Any:
        current = self.objects.get(Key)
        if IfNoneMatch == "*" and current is not None:
            raise s3_error(412, "PreconditionFailed", "PutObject")
        if "IfMatch" in kw and (current is None or f'"{current[1]}"' != kw["IfMatch"]):
            raise s3_error(412, "PreconditionFailed", "PutObject")
        etag = hashlib.md5(Body, usedforsecurity=False).hexdigest()
        self.objects[Key] = (Body, etag)
        if self.lose_reply_of_put:
            self.lose_reply_of_put -= 1
            raise ReadTimeoutError(endpoint_url=f"{ONPREM.url}/models/{Key}")
        return {"ETag": f'"{etag}"'}

    def get_object(self, *, Key: str, **_: Any) -> Any:
        if Key not in self.objects:
            raise s3_error(404, "NoSuchKey", "GetObject")
        data, etag = self.objects[Key]
        return {"Body": io.BytesIO(data), "ETag": f'"{etag}"'}

    def head_object(self, *, Key: str, **_: Any) -> Any:
        if Key not in self.objects:
            raise s3_error(404, "NotFound", "HeadObject")
        data, etag = self.objects[Key]
        return {"ContentLength": len(data), "ETag": f'"{etag}"'}

    def get_paginator(self, _operation: str) -> Any:
        keys = self.objects

        class Pages:
            def paginate(self, *, Prefix: str, **_: Any) -> Iterator[Any]:
                yield {"Contents": [{"Key": k} for k in sorted(keys) if k.startswith(Prefix)]}

        return Pages()

    def list_multipart_uploads(self, **_: Any) -> Any:
        return {"Uploads": []}

    def create_multipart_upload(self, **_: Any) -> Any:
        upload_id = f"u{next(self.ids)}"
        self.uploads[upload_id] = {}
        return {"UploadId": upload_id}

    def upload_part(self, *, UploadId: str, PartNumber: int, Body: bytes, **_: Any) -> Any:
        self.uploads[UploadId][PartNumber] = Body
        return {"ETag": f'"{hashlib.md5(Body, usedforsecurity=False).hexdigest()}"'}

    def complete_multipart_upload(self, *, Key: str, UploadId: str, **_: Any) -> Any:
        parts = self.uploads.pop(UploadId)
        data = b"".join(parts[n] for n in sorted(parts))
        self.objects[Key] = (data, f"{hashlib.md5(data, usedforsecurity=False).hexdigest()}-x")
        self.part_counts[Key] = len(parts)
        return {}

    def abort_multipart_upload(self, *, UploadId: str, **_: Any) -> Any:
        self.uploads.pop(UploadId, None)
        return {}


def registry(endpoint: Endpoint, client: MemoryS3, *, part_size: int = 5 * MiB) -> ModelRegistry:
    location = Location(endpoint, "models", "registry/")
    return ModelRegistry(location, client, part_size=part_size)  # type: ignore[arg-type]


def published(client: MemoryS3, name: str, *versions: str) -> None:
    for version in versions:
        manifest = Manifest(name, version, (), "2024-01-01T00:00:00+00:00", {})
        key = "registry/" + manifests.manifest_key(name, version)
        client.put_object(Key=key, Body=manifests.encode(manifest))


# -- aliases ---------------------------------------------------------------------------------


def test_an_alias_move_whose_reply_was_lost_is_done_not_a_conflict() -> None:
    client = MemoryS3()
    published(client, "llama", "1", "2")
    models = registry(ONPREM, client)
    models.move_alias("llama", "prod", "1", expected=None)
    client.lose_reply_of_put = 1  # the store applies the move; its answer times out
    models.move_alias("llama", "prod", "2", expected="1")  # the retry meets 412
    assert models.alias("llama", "prod") is not None
    assert models.alias("llama", "prod")[0] == "2"  # type: ignore[index]


def test_an_alias_created_with_a_lost_reply_is_done_too() -> None:
    client = MemoryS3()
    published(client, "llama", "1")
    client.lose_reply_of_put = 1
    registry(ONPREM, client).move_alias("llama", "prod", "1", expected=None)
    assert json.loads(client.objects["registry/models/llama/aliases/prod.json"][0]) == {
        "version": "1"
    }


def test_an_alias_someone_else_moved_between_read_and_write_is_still_a_conflict() -> None:
    client = MemoryS3()
    published(client, "llama", "1", "2", "3")
    models = registry(ONPREM, client)
    models.move_alias("llama", "prod", "1", expected=None)
    write = client.put_object

    def someone_moves_it_first(**kwargs: Any) -> Any:
        client.put_object = write  # type: ignore[method-assign]
        write(Key=kwargs["Key"], Body=b'{"version": "3"}')
        return write(**kwargs)

    client.put_object = someone_moves_it_first  # type: ignore[method-assign]
    with pytest.raises(AliasConflict):
        models.move_alias("llama", "prod", "2", expected="1")
    assert models.alias("llama", "prod")[0] == "3"  # type: ignore[index]


# -- blobs larger than 10,000 parts ------------------------------------------------------------


def test_a_blob_over_the_part_limit_is_sent_in_bigger_parts_and_arrives_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(partlib, "MAX_PARTS", 4)  # S3's 10,000, scaled down
    data = bytes(range(256)) * (25 * MiB // 256)  # 5 parts of the 5 MiB part size
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    staging_client, onprem_client = MemoryS3(), MemoryS3()
    staging_client.objects["registry/" + manifests.blob_key(digest)] = (data, "e")
    staging, onprem = registry(CLOUD, staging_client), registry(ONPREM, onprem_client)
    sent = onprem.receive_blob(staging, FileEntry("weights.bin", digest, len(data)))
    key = "registry/" + manifests.blob_key(digest)
    assert sent == len(data)
    assert onprem_client.objects[key][0] == data
    assert onprem_client.part_counts[key] == 3  # 10 MiB parts: at most MAX_PARTS


# -- checkpoint model names -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("team-a/train", "team/a-train"),
        ("ml/train-v1", "ml/train.v1"),
        ("ns/" + "a" * 120 + "x", "ns/" + "a" * 120 + "y"),  # same after the cut
    ],
)
def test_two_jobs_never_share_a_checkpoint_model(one: str, other: str) -> None:
    assert manifests.checkpoint_model(one) != manifests.checkpoint_model(other)


def test_a_checkpoint_model_keeps_the_namespace_as_its_own_segment() -> None:
    assert manifests.checkpoint_model("team-a/train") == "checkpoints/team-a/train"
    assert manifests.checkpoint_model("job-1") == "checkpoints/job-1"  # no namespace


@pytest.mark.parametrize(
    "job",
    [
        "research-computer-vision-team-production/resnet50-imagenet-finetune-lr-sweep-0001-cos",
        "research-computer-vision-team-production/" + "r" * 61,  # 40 + 61 characters
        "ns/" + "job.with.dots-" * 18,  # a 252-character Kubernetes name
        "ns/Upper_Case and spaces",
    ],
)
def test_a_checkpoint_model_of_a_long_or_unusual_job_key_is_a_valid_model_name(job: str) -> None:
    name = manifests.checkpoint_model(job)
    assert manifests.check_name(name) == name
    assert name.startswith("checkpoints/" + job.split("/")[0].lower()[:89])
    assert manifests.checkpoint_model(job) == name  # the same job, the same model, every time


# -- the replicator applies deletes ------------------------------------------------------------


class DeletingEngine:
    """A copy engine over in-memory listings that behaves as `DatasetCopier` does: `plan`
    reads the saved hold-back clock and saves nothing; `run` saves it, then deletes."""

    def __init__(self, policy: DeletePolicy, clock: Callable[[], float]) -> None:
        self.source = {k: ListedObject(k, 1, f"e-{k}", 0.0) for k in ("a", "b", "c", "d")}
        self.target = dict(self.source)
        self.saved_missing_since: dict[str, float] = {}
        self.policy = policy
        self.clock = clock
        self.runs = 0

    def plan(self) -> tuple[SyncPlan, float]:
        now = self.clock()
        plan = plan_sync(
            self.source.values(),
            self.target.values(),
            deletes=self.policy,
            missing_since=self.saved_missing_since,
            now=now,
        )
        return plan, now

    def run(self, **_: Any) -> SyncReport:
        self.runs += 1
        plan, listed_at = self.plan()
        self.target.update({item.key: self.source[item.key] for item in plan.copies})
        self.saved_missing_since = dict(plan.missing_since)
        for key in plan.deletes:
            del self.target[key]
        return SyncReport(plan, listed_at, dry_run=False, deleted=len(plan.deletes))

    def stop(self) -> None:
        pass


async def test_the_replicator_deletes_what_the_source_lost_once_the_hold_back_passed() -> None:
    now = [1000.0]
    engine = DeletingEngine(
        DeletePolicy(enabled=True, max_fraction=1.0, hold_back_s=3600.0), lambda: now[0]
    )
    replicator = Replicator(lambda d, c: engine, recheck_after_s=0.0, clock=lambda: now[0])
    del engine.source["d"]
    first = await replicator.sync_now("ds", "cloud-a")
    assert first.ready  # every source object is there: the job need not wait for a delete
    assert engine.saved_missing_since == {"d": 1000.0}  # the clock starts, and is kept
    now[0] += 1800.0
    await replicator.sync_now("ds", "cloud-a")
    assert "d" in engine.target  # held back
    now[0] += 1800.0
    done = await replicator.sync_now("ds", "cloud-a")
    assert done.ready
    assert sorted(engine.target) == ["a", "b", "c"]


async def test_the_replicator_keeps_the_delete_cap() -> None:
    now = [1000.0]
    engine = DeletingEngine(DeletePolicy(enabled=True, max_fraction=0.25), lambda: now[0])
    replicator = Replicator(lambda d, c: engine, recheck_after_s=0.0, clock=lambda: now[0])
    for key in ("b", "c", "d"):
        del engine.source[key]  # 3 of 4: over the cap of 25 %
    for _ in range(3):
        status = await replicator.sync_now("ds", "cloud-a")
        now[0] += 60.0
    assert status.ready
    assert sorted(engine.target) == ["a", "b", "c", "d"]
    assert engine.runs == 1  # the first saw the clock start; nothing changed after it


async def test_a_replica_in_sync_starts_no_run() -> None:
    engine = DeletingEngine(DeletePolicy(enabled=True), lambda: 1000.0)
    replicator = Replicator(lambda d, c: engine, recheck_after_s=0.0, clock=lambda: 1000.0)
    for _ in range(3):
        assert (await replicator.sync_now("ds", "cloud-a")).state is ReplicaState.REPLICATED
    assert engine.runs == 0


async def test_a_failed_delete_leaves_the_replica_ready_and_says_why() -> None:
    engine = DeletingEngine(DeletePolicy(enabled=True, max_fraction=1.0), lambda: 1000.0)
    replicator = Replicator(lambda d, c: engine, recheck_after_s=0.0, clock=lambda: 1000.0)
    del engine.source["d"]

    def denied(**_: Any) -> SyncReport:
        raise PermissionError("DeleteObjects: AccessDenied")

    engine.run = denied  # type: ignore[method-assign]
    status = await replicator.sync_now("ds", "cloud-a")
    assert status.ready
    assert "AccessDenied" in status.message
