"""Smoke tests of the sandbox's S3 stores: the operations federator's sync relies on.

Every store (SeaweedFS on onprem and cloud-a, versitygw on cloud-b) must do multipart
uploads, server-side copies and conditional writes, and must accept only its own keys.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from federator import sandbox as sandbox_api
from federator.sandbox import SandboxEnv

pytestmark = pytest.mark.sandbox

STORES = ("onprem", "cloud-a", "cloud-b")
PART = 5 * 1024 * 1024  # the S3 minimum size of every part but the last


def test_s3_json_describes_three_stores_with_distinct_credentials(sandbox: SandboxEnv) -> None:
    assert set(sandbox.s3) == set(STORES)
    keys = {entry["access_key_id"] for entry in sandbox.s3.values()}
    assert len(keys) == 3
    for name, entry in sandbox.s3.items():
        assert entry["region"] == "us-east-1"
        assert entry["buckets"] == {"datasets": f"{name}-datasets", "models": f"{name}-models"}
        creds = json.loads((sandbox.root / "credentials" / f"{name}.json").read_text())
        assert creds == {
            "access_key_id": entry["access_key_id"],
            "secret_access_key": entry["secret_access_key"],
        }
    assert sandbox.s3["onprem"]["endpoint"] == "http://127.0.0.1:18310"
    assert sandbox.s3["cloud-a"]["endpoint"] == "http://127.0.0.1:18320"
    assert sandbox.s3["cloud-b"]["endpoint"] == "http://127.0.0.1:18330"


@pytest.mark.parametrize("store", STORES)
def test_contract_buckets_exist(sandbox: SandboxEnv, store: str) -> None:
    s3 = sandbox.boto3_client(store)
    names = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert {f"{store}-datasets", f"{store}-models"} <= names


@pytest.mark.parametrize("store", STORES)
def test_store_rejects_another_stores_keys(sandbox: SandboxEnv, store: str) -> None:
    other = STORES[(STORES.index(store) + 1) % len(STORES)]
    import boto3

    foreign = boto3.client(
        "s3",
        endpoint_url=sandbox.s3[store]["endpoint"],
        region_name="us-east-1",
        aws_access_key_id=sandbox.s3[other]["access_key_id"],
        aws_secret_access_key=sandbox.s3[other]["secret_access_key"],
    )
    with pytest.raises(ClientError) as denied:
        foreign.list_buckets()
    # AWS and SeaweedFS answer 403; versitygw v1.7 answers 404 XAdminUserNotFound.
    assert denied.value.response["Error"]["Code"] in {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "AccessDenied",
        "XAdminUserNotFound",
    }


@pytest.mark.parametrize("store", STORES)
def test_multipart_upload_and_copy(
    sandbox: SandboxEnv, bucket_factory: Callable[..., str], store: str
) -> None:
    s3 = sandbox.boto3_client(store)
    bucket = bucket_factory(store, prefix="mpu")
    parts = [b"a" * PART, b"b" * PART, b"tail"]
    upload = s3.create_multipart_upload(Bucket=bucket, Key="big.bin")
    etags = []
    for number, body in enumerate(parts, start=1):
        answer = s3.upload_part(
            Bucket=bucket, Key="big.bin", UploadId=upload["UploadId"], PartNumber=number, Body=body
        )
        etags.append({"ETag": answer["ETag"], "PartNumber": number})
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="big.bin",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": etags},
    )
    whole = b"".join(parts)
    got = s3.get_object(Bucket=bucket, Key="big.bin")
    assert got["Body"].read() == whole
    # The multipart ETag is md5(concatenated part md5s)-N on every implementation we run.
    digest = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()
    assert got["ETag"].strip('"') == f"{digest}-3"

    s3.copy_object(Bucket=bucket, Key="copy.bin", CopySource={"Bucket": bucket, "Key": "big.bin"})
    assert s3.get_object(Bucket=bucket, Key="copy.bin")["Body"].read() == whole


@pytest.mark.parametrize("store", STORES)
def test_conditional_writes_and_reads(
    sandbox: SandboxEnv, bucket_factory: Callable[..., str], store: str
) -> None:
    s3 = sandbox.boto3_client(store)
    bucket = bucket_factory(store, prefix="cond")
    first = s3.put_object(Bucket=bucket, Key="k", Body=b"one", IfNoneMatch="*")
    with pytest.raises(ClientError) as exists:
        s3.put_object(Bucket=bucket, Key="k", Body=b"two", IfNoneMatch="*")
    assert exists.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"one"

    with pytest.raises(ClientError) as unchanged:
        s3.get_object(Bucket=bucket, Key="k", IfNoneMatch=first["ETag"])
    assert unchanged.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    with pytest.raises(ClientError) as changed:
        s3.get_object(Bucket=bucket, Key="k", IfMatch='"0123456789abcdef0123456789abcdef"')
    assert changed.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412


def test_a_killed_store_comes_back_with_its_data(
    sandbox: SandboxEnv, bucket_factory: Callable[..., str]
) -> None:
    s3 = sandbox.boto3_client("cloud-b")
    bucket = bucket_factory("cloud-b", prefix="crash")
    s3.put_object(Bucket=bucket, Key="kept", Body=b"still here")
    assert sandbox_api.stop_component("cloud-b", "s3", kill=True)
    try:
        with pytest.raises(EndpointConnectionError):
            sandbox.boto3_client("cloud-b").list_buckets()
    finally:
        sandbox_api.start_component("cloud-b", "s3")
    assert s3.get_object(Bucket=bucket, Key="kept")["Body"].read() == b"still here"
