"""Invariant checks of the fault suite that `tests/invariants.py` (jobs and copies) does not have.

Objects (anchors R10-R16, Jepsen's `set`): every source object is at the replica with equal
content (SHA-256 of the bytes read back from both stores, not the ETags the engine itself
compares, so an engine bug cannot hide behind its own checksum), nothing unexpected is at the
replica, no multipart upload is left open. Secrets: a known value never appears in a text.
Processes: a subprocess exits within a deadline.

Every check reads the stores with plain boto3 clients made from the sandbox's credentials,
never through `federator.storage`.
"""

from __future__ import annotations

import hashlib
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Place:
    """A prefix in a bucket, read with a plain boto3 client."""

    client: Any
    bucket: str
    prefix: str = ""

    def digests(self) -> dict[str, str]:
        """Relative key -> SHA-256 of the object's bytes, for every object under the prefix."""
        return {key: self.digest(key) for key in self.listed_keys()}

    def listed_keys(self) -> list[str]:
        found: list[str] = []
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix
        )
        for page in pages:
            found += [e["Key"][len(self.prefix) :] for e in page.get("Contents", [])]
        return [k for k in found if not k.startswith(".federator/")]

    def digest(self, key: str) -> str:
        body = self.client.get_object(Bucket=self.bucket, Key=f"{self.prefix}{key}")["Body"]
        sha = hashlib.sha256()
        for chunk in iter(lambda: body.read(1 << 20), b""):
            sha.update(chunk)
        return sha.hexdigest()

    def open_uploads(self) -> list[str]:
        listed = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=self.prefix)
        return [u["Key"] for u in listed.get("Uploads", [])]


def check_replica_equals(source: Mapping[str, str], replica: Place) -> None:
    """Lost = 0, unexpected = 0, every object's bytes equal, no upload left open (R10)."""
    found = replica.digests()
    lost = sorted(set(source) - set(found))
    unexpected = sorted(set(found) - set(source))
    differ = sorted(k for k in set(source) & set(found) if source[k] != found[k])
    assert not lost, f"objects lost at the replica: {lost[:10]}"
    assert not unexpected, f"objects at the replica that the source never had: {unexpected[:10]}"
    assert not differ, f"objects whose bytes differ from the source's: {differ[:10]}"
    assert not replica.open_uploads(), "multipart uploads left open at the replica"


def check_no_partial_object(replica: Place, expected: Mapping[str, str]) -> None:
    """Whatever is visible at a final key is a complete, correct object (never a partial one)."""
    for key in replica.listed_keys():
        assert key in expected, f"unexpected object at the replica: {key}"
        assert replica.digest(key) == expected[key], f"partial or wrong object visible at {key}"


def check_no_secret_in(texts: Mapping[str, str], secrets: Iterable[str]) -> None:
    """No secret value appears in any text (log lines, events, metrics, HTTP answers)."""
    leaks = [
        f"{where}: ...{text[max(0, text.find(s) - 60) : text.find(s)]}<SECRET>"
        for where, text in texts.items()
        for s in secrets
        if s and s in text
    ]
    assert not leaks, "secret values leaked:\n" + "\n".join(leaks[:10])


def wait_exit(process: subprocess.Popen[Any], *, within_s: float) -> float:
    """Wait for a process to exit; return how long it took, fail if it outlives `within_s`."""
    started = time.monotonic()
    try:
        process.wait(timeout=within_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError(
            f"process {process.pid} did not exit within {within_s:.0f} s"
        ) from None
    return time.monotonic() - started


def poll(
    check: Callable[[], bool], *, timeout_s: float, interval_s: float = 0.5, what: str
) -> None:
    """Poll a synchronous condition until it holds or the deadline passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
