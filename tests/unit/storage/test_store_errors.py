"""What the storage edge raises when a store fails: federator's errors, never botocore's.

A store that keeps failing after the retries becomes `errors.StoreUnavailable` (transient: the
caller tries again later), naming the store, what was being done and the cause; a refusal a
person must fix (access denied, no such bucket) becomes `retrying.StoreRefused`, a `UserError`,
and is not retried. The S3 client here is a small fake raising botocore's own exception classes;
the retry policy keeps its shape in these tests (three attempts) but not its waits.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import ClientError, EndpointConnectionError
from botocore.exceptions import SSLError as BotoSSLError
from structlog.testing import capture_logs
from tenacity import stop_after_attempt, wait_none

from federator import errors
from federator.policy import load_policy
from federator.storage import listings, retrying
from federator.storage.copying import DatasetCopier, TransferSettings
from federator.storage.endpoints import Endpoint, Location
from federator.storage.registry import AliasConflict, ModelRegistry, sync_back
from federator.storage.stores import Stores
from federator.storage.syncstate import SyncState, UploadRecord
from federator.syncing import manifests
from federator.syncing.manifests import Manifest
from tests.support import configs

ONPREM = Endpoint("onprem", "http://10.9.8.7:8333", "id", "secret")
CLOUD = Endpoint("cloud-a", "http://10.9.8.8:8333", "id", "secret")
ATTEMPTS = 3


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The retried calls these tests reach give up after three attempts, without waiting."""
    for function in (
        listings._page,
        SyncState._read,
        SyncState._put,
        DatasetCopier._open_uploads,
        ModelRegistry._keys,
        ModelRegistry._get,
        ModelRegistry._put,
    ):
        policy = vars(function)["retry"]
        monkeypatch.setattr(policy, "stop", stop_after_attempt(ATTEMPTS))
        monkeypatch.setattr(policy, "wait", wait_none())


def s3_error(status: int, code: str, operation: str) -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": code},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, operation)


def down(endpoint: Endpoint) -> EndpointConnectionError:
    return EndpointConnectionError(endpoint_url=f"{endpoint.url}/bucket")


class FakeS3:
    """Answers each operation with `answers[operation]`: a value, or an exception to raise."""

    def __init__(self, **answers: object) -> None:
        self.answers: dict[str, object] = {
            "get_object": s3_error(404, "NoSuchKey", "GetObject"),
            "list_objects_v2": {"Contents": [], "IsTruncated": False},
            "list_multipart_uploads": {"Uploads": []},
            "put_object": {"ETag": '"e"'},
            "head_object": s3_error(404, "NotFound", "HeadObject"),
            **answers,
        }
        self.calls: Counter[str] = Counter()

    def _answer(self, operation: str) -> Any:
        self.calls[operation] += 1
        answer = self.answers[operation]
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def get_object(self, **_: object) -> Any:
        return self._answer("get_object")

    def put_object(self, **_: object) -> Any:
        return self._answer("put_object")

    def list_objects_v2(self, **_: object) -> Any:
        return self._answer("list_objects_v2")

    def head_object(self, **_: object) -> Any:
        return self._answer("head_object")

    def upload_file(self, *_: object, **__: object) -> Any:
        return self._answer("upload_file")

    def get_paginator(self, operation: str) -> Any:
        fake = self

        class Pages:
            def paginate(self, **_: object) -> Iterator[Any]:
                yield fake._answer(operation)  # one page

        return Pages()


def copier(source: FakeS3, target: FakeS3) -> DatasetCopier:
    return DatasetCopier(
        Location(ONPREM, "datasets", "imagenet/"),
        Location(CLOUD, "replicas", "imagenet/"),
        settings=TransferSettings(lean_requests=False),
        source_client=source,  # type: ignore[arg-type]
        target_client=target,  # type: ignore[arg-type]
    )


# -- the dataset copier --------------------------------------------------------------------------


def test_plan_names_the_target_store_when_its_sync_state_cannot_be_read() -> None:
    target = FakeS3(get_object=down(CLOUD))
    with pytest.raises(errors.StoreUnavailable) as raised:
        copier(FakeS3(), target).plan()
    message = str(raised.value)
    assert raised.value.store == "cloud-a (http://10.9.8.8:8333)"
    assert "sync state s3://replicas/.federator/sync/" in message
    assert "Could not connect to the endpoint URL" in message
    assert target.calls["get_object"] == ATTEMPTS, "retried as before, then translated"


@pytest.mark.parametrize("side", ["source", "target"])
def test_plan_names_the_store_whose_listing_kept_failing(side: str) -> None:
    source, target = FakeS3(), FakeS3()
    failing, endpoint, uri = (
        (source, ONPREM, "s3://datasets/imagenet/")
        if side == "source"
        else (target, CLOUD, "s3://replicas/imagenet/")
    )
    failing.answers["list_objects_v2"] = down(endpoint)
    with pytest.raises(errors.StoreUnavailable) as raised:
        copier(source, target).plan()
    assert raised.value.store == f"{endpoint.name} ({endpoint.url})"
    assert f"listing {uri}: Could not connect" in raised.value.reason
    assert failing.calls["list_objects_v2"] == ATTEMPTS


def test_plan_reports_a_denied_listing_as_a_refusal_at_once_not_as_a_fault() -> None:
    source = FakeS3(list_objects_v2=s3_error(403, "AccessDenied", "ListObjectsV2"))
    with pytest.raises(retrying.StoreRefused) as raised:
        copier(source, FakeS3()).plan()
    assert isinstance(raised.value, errors.UserError)
    assert not isinstance(raised.value, errors.TransientError)
    assert "onprem (http://10.9.8.7:8333)" in str(raised.value)
    assert "AccessDenied" in str(raised.value)
    assert source.calls["list_objects_v2"] == 1, "an answer is not retried"


def test_run_names_the_target_when_its_open_uploads_cannot_be_listed() -> None:
    target = FakeS3(list_multipart_uploads=down(CLOUD))
    with pytest.raises(errors.StoreUnavailable) as raised:
        copier(FakeS3(), target).run()
    assert raised.value.store == "cloud-a (http://10.9.8.8:8333)"
    assert "uploads under s3://replicas/imagenet/" in raised.value.reason
    assert target.calls["list_multipart_uploads"] == ATTEMPTS


def test_a_certificate_that_does_not_verify_is_still_explained_with_its_setting(
    tmp_path: Path,
) -> None:
    def edit(config: dict[str, Any]) -> None:
        configs.use_own_keys(config, tmp_path)
        for cluster in config["clusters"]:
            if cluster["name"] == "cloud-a":
                cluster["object_store"]["endpoint"] = "https://10.9.8.8:8443"

    policy = configs.scenario_config(tmp_path, instance="tls-unit", namespaces=["t"], edit=edit)
    stores = Stores(load_policy(policy))
    endpoint = stores.endpoint("cloud-a")
    failure = BotoSSLError(
        endpoint_url=f"{endpoint.url}/replicas",
        error="[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed",
    )
    engine = DatasetCopier(
        Location(ONPREM, "datasets", "imagenet/"),
        Location(endpoint, "replicas", "imagenet/"),
        settings=TransferSettings(lean_requests=False),
        source_client=FakeS3(),  # type: ignore[arg-type]
        target_client=FakeS3(get_object=failure),  # type: ignore[arg-type]
    )
    with pytest.raises(errors.UserError) as explained, stores.certificate_failures_explained():
        engine.plan()
    message = str(explained.value)
    assert message.startswith("clusters.cloud-a.object_store: the TLS certificate of https://")
    assert "ca_bundle" in message


# -- the model registry --------------------------------------------------------------------------


def registry(endpoint: Endpoint, client: FakeS3, bucket: str) -> ModelRegistry:
    return ModelRegistry(Location(endpoint, bucket, "registry/"), client)  # type: ignore[arg-type]


@pytest.mark.parametrize("side", ["source", "target"])
def test_sync_back_names_the_registry_whose_listing_kept_failing(side: str) -> None:
    staging, onprem = FakeS3(), FakeS3()
    failing, endpoint = (staging, CLOUD) if side == "source" else (onprem, ONPREM)
    failing.answers["list_objects_v2"] = down(endpoint)
    with pytest.raises(errors.StoreUnavailable) as raised:
        sync_back(registry(CLOUD, staging, "staging"), registry(ONPREM, onprem, "models"))
    assert raised.value.store == f"{endpoint.name} ({endpoint.url})"
    bucket = "staging" if side == "source" else "models"
    assert f"listing under s3://{bucket}/registry/: Could not connect" in raised.value.reason
    assert failing.calls["list_objects_v2"] == ATTEMPTS


def test_sync_back_reports_a_missing_bucket_as_a_refusal_not_as_a_fault() -> None:
    onprem = FakeS3(list_objects_v2=s3_error(404, "NoSuchBucket", "ListObjectsV2"))
    with pytest.raises(retrying.StoreRefused) as raised:
        sync_back(registry(CLOUD, FakeS3(), "staging"), registry(ONPREM, onprem, "models"))
    assert not isinstance(raised.value, errors.TransientError)
    assert "NoSuchBucket" in str(raised.value)
    assert onprem.calls["list_objects_v2"] == 1


def test_reading_a_manifest_from_a_store_that_is_down_names_the_store() -> None:
    client = FakeS3(get_object=down(ONPREM))
    with pytest.raises(errors.StoreUnavailable) as raised:
        registry(ONPREM, client, "models").manifest("llama", "3")
    assert raised.value.store == "onprem (http://10.9.8.7:8333)"
    assert "s3://models/registry/" in raised.value.reason
    assert client.calls["get_object"] == ATTEMPTS


def test_an_alias_moved_meanwhile_is_still_a_conflict_not_a_refusal() -> None:
    manifest = manifests.encode(Manifest("llama", "3", (), "2024-01-01T00:00:00+00:00", {}))

    class Body:
        def __init__(self, data: bytes) -> None:
            self.data = data

        def read(self) -> bytes:
            return self.data

    reads = iter([manifest, b'{"version": "2"}', b'{"version": "4"}'])

    class Registry(FakeS3):
        def get_object(self, **_: object) -> Any:
            return {"Body": Body(next(reads)), "ETag": '"e1"'}

    client = Registry(put_object=s3_error(412, "PreconditionFailed", "PutObject"))
    with pytest.raises(AliasConflict):
        registry(ONPREM, client, "models").move_alias("llama", "prod", "3", expected="2")


def test_publishing_to_a_bucket_that_denies_writes_is_a_refusal_naming_the_store(
    tmp_path: Path,
) -> None:
    local = tmp_path / "model.bin"
    local.write_bytes(b"weights")
    try:  # how boto3's managed upload reports a ClientError: as its context
        raise s3_error(403, "AccessDenied", "PutObject")
    except ClientError:
        try:
            raise S3UploadFailedError("Failed to upload model.bin: AccessDenied")
        except S3UploadFailedError as error:
            failure = error
    client = FakeS3(upload_file=failure)
    with pytest.raises(retrying.StoreRefused) as raised:
        registry(ONPREM, client, "models").publish("llama", "3", {"model.bin": local})
    assert raised.value.store == "onprem (http://10.9.8.7:8333)"
    assert "uploading a blob under s3://models/registry/" in raised.value.reason
    assert "AccessDenied" in raised.value.reason


def deletes(answer: object) -> tuple[DatasetCopier, FakeS3]:
    target = FakeS3(delete_objects=answer)
    target.delete_objects = lambda **_: target._answer("delete_objects")  # type: ignore[attr-defined]
    return copier(FakeS3(), target), target


def per_key_failure(code: str) -> dict[str, Any]:
    return {"Errors": [{"Key": "imagenet/a", "Code": code, "Message": "no"}]}


def test_a_delete_the_store_refuses_per_key_is_a_refusal_naming_the_store() -> None:
    made, target = deletes(per_key_failure("AccessDenied"))
    with pytest.raises(retrying.StoreRefused) as raised, made._on_target("deleting objects"):
        made._delete(("a", "b"))
    assert "cloud-a (http://10.9.8.8:8333)" in str(raised.value)
    assert "1 of 2 keys not deleted, first imagenet/a" in str(raised.value)
    assert target.calls["delete_objects"] == 1


def test_a_delete_that_fails_per_key_with_a_passing_fault_is_retried_then_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    policy = vars(DatasetCopier._delete_batch)["retry"]
    monkeypatch.setattr(policy, "stop", stop_after_attempt(ATTEMPTS))
    monkeypatch.setattr(policy, "wait", wait_none())
    made, target = deletes(per_key_failure("InternalError"))
    with pytest.raises(errors.StoreUnavailable), made._on_target("deleting objects"):
        made._delete(("a",))
    assert target.calls["delete_objects"] == ATTEMPTS


# -- objects of ours that do not decode ----------------------------------------------------------


class Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self) -> bytes:
        return self.data


@pytest.mark.parametrize(
    "stored",
    [b"{not json", b"[1]", b'{"verified": 3}', b'{"uploads": {"big.bin": {"upload_id": "u"}}}'],
)
def test_a_sync_state_that_does_not_decode_is_started_over_and_replaced(stored: bytes) -> None:
    # The state only saves work: a copy must not stop for good on a damaged one.
    target = FakeS3(get_object={"Body": Body(stored), "ETag": '"e"'})
    source, replica = Location(ONPREM, "datasets", "imagenet/"), Location(CLOUD, "replicas", "x/")
    with capture_logs() as logs:
        state = SyncState.load(target, source, replica)  # type: ignore[arg-type]
    assert (state.verified, state.uploads, state.missing_since) == ({}, {}, {})
    [warning] = [entry for entry in logs if entry["log_level"] == "warning"]
    assert warning["object"] == f"s3://replicas/{state.key}"
    assert warning["store"] == "cloud-a (http://10.9.8.8:8333)"
    state.save()
    assert target.calls["put_object"] == 1, "the damaged object is replaced at the next save"


def test_a_readable_sync_state_is_restored_as_saved() -> None:
    saved = (
        b'{"version":1,"verified":{"a":["s","t"]},"uploads":{"big.bin":{"upload_id":"u",'
        b'"source_etag":"e","part_size":8,"parts":2}},"missing_since":{"gone":5.0}}'
    )
    target = FakeS3(get_object={"Body": Body(saved), "ETag": '"e"'})
    source, replica = Location(ONPREM, "datasets", "imagenet/"), Location(CLOUD, "replicas", "x/")
    state = SyncState.load(target, source, replica)  # type: ignore[arg-type]
    assert state.verified == {"a": ("s", "t")}
    assert state.uploads == {"big.bin": UploadRecord("u", "e", 8, 2)}
    assert state.missing_since == {"gone": 5.0}
    state.save()
    assert target.calls["put_object"] == 0, "nothing changed, nothing written"


@pytest.mark.parametrize(
    ("stored", "cause"),
    [
        (b"{not json", "Expecting property name"),
        (b'{"v": "3"}', "'version'"),
        (b"[]", "list indices"),
        (b'{"version": "../3"}', "version '../3'"),
    ],
)
def test_an_alias_pointer_that_does_not_decode_is_a_federator_error_naming_it(
    stored: bytes, cause: str
) -> None:
    client = FakeS3(get_object={"Body": Body(stored), "ETag": '"e"'})
    with pytest.raises(manifests.ManifestError) as raised:
        registry(ONPREM, client, "models").alias("llama", "prod")
    assert isinstance(raised.value, errors.FederatorError)
    message = str(raised.value)
    assert message.startswith("onprem:s3://models/registry/models/llama/aliases/prod.json: ")
    assert cause in message


@pytest.mark.parametrize("stored", [b"[1]", b'{"mediaType": "x"}', b"\xff"])
def test_a_manifest_that_does_not_decode_is_a_federator_error_naming_it(stored: bytes) -> None:
    client = FakeS3(get_object={"Body": Body(stored), "ETag": '"e"'})
    with pytest.raises(errors.FederatorError, match="not a federator model manifest"):
        registry(ONPREM, client, "models").manifest("llama", "3")
