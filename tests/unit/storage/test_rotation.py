"""Rotating store keys (`federator.storage.rotation`): a rewritten credentials file is used
after the re-read interval, by a client built before the rotation; a half-written file keeps
the current keys."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from federator.policy.credentials import S3Credentials
from federator.storage.endpoints import Endpoint, make_client
from federator.storage.rotation import rotating_credentials


class Clock:
    def __init__(self) -> None:
        self.at = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


def keys_file(path: Path, key: str, secret: str) -> None:
    path.write_text(json.dumps({"access_key_id": key, "secret_access_key": secret}))


def from_file(path: Path) -> S3Credentials:
    data = json.loads(path.read_text())
    return S3Credentials(data["access_key_id"], data["secret_access_key"])


def test_a_rewritten_file_is_used_after_the_reread_interval(tmp_path: Path) -> None:
    path, clock = tmp_path / "keys.json", Clock()
    keys_file(path, "AKOLD", "old-secret")
    credentials = rotating_credentials(lambda: from_file(path), every_s=10, now=clock)
    keys_file(path, "AKNEW", "new-secret")
    clock.advance(9)
    assert credentials.get_frozen_credentials().access_key == "AKOLD"
    clock.advance(2)
    frozen = credentials.get_frozen_credentials()
    assert (frozen.access_key, frozen.secret_key) == ("AKNEW", "new-secret")


def test_an_unreadable_file_keeps_the_current_keys(tmp_path: Path) -> None:
    path, clock = tmp_path / "keys.json", Clock()
    keys_file(path, "AKOLD", "old-secret")
    credentials = rotating_credentials(lambda: from_file(path), every_s=10, now=clock)
    path.write_text('{"access_key_id": "AKNE')  # caught half-written
    clock.advance(11)
    assert credentials.get_frozen_credentials().access_key == "AKOLD"
    keys_file(path, "AKNEW", "new-secret")
    assert credentials.get_frozen_credentials().access_key == "AKNEW"  # tried again at once


def test_a_client_built_before_the_rotation_signs_with_the_new_keys(tmp_path: Path) -> None:
    path, clock = tmp_path / "keys.json", Clock()
    keys_file(path, "AKOLD", "old-secret")
    credentials = rotating_credentials(lambda: from_file(path), every_s=10, now=clock)
    endpoint = Endpoint("store", "http://127.0.0.1:9", "AKOLD", "old-secret")
    client = make_client(
        Endpoint("store", "http://127.0.0.1:9", "AKOLD", "old-secret", rotating_keys=credentials)
    )
    signed: list[str] = []
    client.meta.events.register(
        "before-send.s3.*", lambda request, **_: signed.append(request.headers["Authorization"])
    )
    client.meta.events.register("before-send.s3.*", lambda **_: _answer())
    client.list_buckets()
    keys_file(path, "AKNEW", "new-secret")
    clock.advance(11)
    client.list_buckets()
    assert b"Credential=AKOLD/" in _bytes(signed[0])
    assert b"Credential=AKNEW/" in _bytes(signed[1])
    assert endpoint == Endpoint(
        "store", "http://127.0.0.1:9", "AKOLD", "old-secret", rotating_keys=credentials
    ), "the live credentials object is not part of an endpoint's identity"


def _bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def _answer() -> object:
    """A canned ListBuckets answer, so no request leaves the process."""
    from botocore.awsrequest import AWSResponse

    class Raw:
        def stream(self, **_: object) -> list[bytes]:
            return [b""]

    body = b"<ListAllMyBucketsResult><Buckets/></ListAllMyBucketsResult>"
    response = AWSResponse("http://127.0.0.1:9/", 200, {}, Raw())
    response._content = body  # the parsed body; botocore reads it from here
    return response
