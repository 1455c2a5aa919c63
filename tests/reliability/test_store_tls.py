"""A live S3 store over HTTPS with a private CA (`object_store.ca_bundle`).

The sandbox's stores speak plain HTTP, so this scenario starts its own SeaweedFS (`weed mini`
with `-s3.cert.file`/`-s3.key.file`, free ports) serving a certificate for 127.0.0.1 signed by
a CA made for the test (`tests/support/tlsfiles.py`), and uses it as cloud-a's store.
`federator sync dataset` (the CLI, as a process) copies a dataset from the sandbox's on-prem
store to it:

- with `ca_bundle: <the CA>`: the sync succeeds and the replica equals the source (SHA-256 of
  every object read back with plain boto3, which verifies with the same CA);
- verification on and no bundle (the system CAs do not know ours): exit 2 at once (a
  certificate failure is a setting, not retried like a fault), one message naming the store
  and the `ca_bundle` setting, no traceback;
- `verify_tls: false` and no bundle: the sync works (and is logged as insecure by the daemon,
  see test_tls.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from federator.sandbox import SandboxEnv
from tests.reliability import checks
from tests.support import configs
from tests.support.s3server import OwnSeaweed
from tests.support.tlsfiles import make_ca_and_server_cert

# No automatic rerun: the figures reported must come from the one run.
pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.slow,
    pytest.mark.timeout(600),
    pytest.mark.flaky(reruns=0),
]

FEDERATOR = configs.REPO / ".venv" / "bin" / "federator"
KiB, MiB = 1024, 1024 * 1024


@pytest.fixture(scope="module")
def tls_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnSeaweed]:
    root = tmp_path_factory.mktemp("tls-store")
    tls = make_ca_and_server_cert(root / "pki")
    keys = (f"TLS{os.urandom(8).hex().upper()}", os.urandom(20).hex())
    (root / "keys.json").write_text(
        json.dumps({"access_key_id": keys[0], "secret_access_key": keys[1]})
    )
    with OwnSeaweed(root / "s3", *keys, tls=tls) as store:
        store.client().create_bucket(Bucket="tls-replica")
        yield store


def policy_for(
    tmp_path: Path, store: OwnSeaweed, source_bucket: str, *, store_tls: dict[str, Any]
) -> Path:
    def own_store(config: dict[str, Any]) -> None:
        cloud_a = next(c for c in config["clusters"] if c["name"] == "cloud-a")
        cloud_a["object_store"].update(
            {"endpoint": store.url, "credentials": {"file": str(store.root.parent / "keys.json")}}
        )
        cloud_a["object_store"].update(store_tls)
        config["residency"] = []  # its rules name the sandbox's datasets, replaced here
        config["datasets"] = [
            {
                "name": "tlsset",
                "source": f"s3://{source_bucket}/tlsset/",
                "replicas": {"cloud-a": "s3://tls-replica/tlsset/"},
            }
        ]

    tmp_path.mkdir(parents=True, exist_ok=True)
    return configs.scenario_config(
        tmp_path, instance=f"rel-tls-{os.urandom(3).hex()}", namespaces=["default"], edit=own_store
    )


def sync(config: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run(
        [str(FEDERATOR), "sync", "--config", str(config), "dataset", "tlsset", "--to", "cloud-a"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=configs.REPO,
    )
    return done, time.monotonic() - started


def seed(client: Any, bucket: str, names: list[str], size: int) -> None:
    for name in names:
        client.put_object(Bucket=bucket, Key=f"tlsset/{name}", Body=os.urandom(size))


def test_a_store_behind_a_private_ca_syncs_with_its_ca_bundle_and_only_then(
    sandbox: SandboxEnv,
    bucket_factory: Callable[..., str],
    tls_store: OwnSeaweed,
    tmp_path: Path,
) -> None:
    assert tls_store.tls is not None
    assert tls_store.url.startswith("https://")
    source_bucket = bucket_factory("onprem", prefix="reltls")
    onprem = sandbox.boto3_client("onprem")
    seed(onprem, source_bucket, [f"small/{i}" for i in range(8)], 256 * KiB)
    seed(onprem, source_bucket, ["big.bin"], 24 * MiB)  # multipart: parts over HTTPS too
    source = checks.Place(onprem, source_bucket, "tlsset/")
    replica = checks.Place(tls_store.client(), "tls-replica", "tlsset/")

    bundle = str(tls_store.tls.ca_bundle)
    with_bundle, with_bundle_s = sync(
        policy_for(tmp_path / "a", tls_store, source_bucket, store_tls={"ca_bundle": bundle})
    )
    assert with_bundle.returncode == 0, with_bundle.stderr
    checks.check_replica_equals(source.digests(), replica)

    seed(onprem, source_bucket, ["after/refused"], 64 * KiB)
    refused, refused_s = sync(policy_for(tmp_path / "b", tls_store, source_bucket, store_tls={}))
    message = refused.stderr.strip().splitlines()[-1]  # after the "source -> target" line

    seed(onprem, source_bucket, ["after/insecure"], 64 * KiB)
    insecure, insecure_s = sync(
        policy_for(tmp_path / "c", tls_store, source_bucket, store_tls={"verify_tls": False})
    )
    print(
        f"\nwith ca_bundle: exit {with_bundle.returncode} in {with_bundle_s:.1f} s "
        f"({' '.join(with_bundle.stderr.split())[-150:]}); no bundle: exit {refused.returncode} "
        f"in {refused_s:.1f} s: {message!r}; verify_tls false: exit {insecure.returncode} in "
        f"{insecure_s:.1f} s"
    )
    assert refused.returncode == 2, refused.stderr
    assert "Traceback" not in refused.stderr + refused.stdout
    assert message.startswith("federator: error: clusters.cloud-a.object_store:"), message
    assert tls_store.url in message
    assert "does not verify" in message
    assert "ca_bundle" in message
    # A setting, not a fault: no retrying for the 90 s a restarting store is given.
    assert refused_s < 60, f"the certificate failure took {refused_s:.0f} s to report"
    assert insecure.returncode == 0, insecure.stderr
    checks.check_replica_equals(source.digests(), replica)
    assert "after/refused" in replica.listed_keys()  # nothing copied by the refused run: the
    # insecure run copied both new objects (the replica equals the source)


def test_a_missing_ca_bundle_file_is_named_before_any_request(
    tls_store: OwnSeaweed, tmp_path: Path, bucket_factory: Callable[..., str]
) -> None:
    source_bucket = bucket_factory("onprem", prefix="reltls")
    missing = tmp_path / "no-such-ca.pem"
    done, _ = sync(
        policy_for(tmp_path, tls_store, source_bucket, store_tls={"ca_bundle": str(missing)})
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert f"clusters.cloud-a.object_store.ca_bundle: cannot read {missing}" in done.stderr
