"""Shared pytest fixtures: the real local sandbox, and per-test namespaces and buckets.

`sandbox` (session) brings the sandbox up once, or reuses the one `make test` started: `up`
is idempotent and only starts what is not running. A sandbox that cannot start fails the
tests that need it, loudly; nothing is skipped.

Set `FEDERATOR_SANDBOX_PARTS=s3` (comma-separated: s3, clusters, kueue) to bring up only part
of it, e.g. while iterating on S3-only tests.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from federator import sandbox as sandbox_module
from federator.sandbox import BuildFailed, ComponentFailed, SandboxEnv
from federator.sandbox.kubeapi import KubeApi
from federator.sandbox.layout import Layout


def _parts() -> frozenset[str]:
    raw = os.environ.get("FEDERATOR_SANDBOX_PARTS", "")
    parts = frozenset(p.strip() for p in raw.split(",") if p.strip())
    unknown = parts - sandbox_module.ALL_PARTS
    if unknown:
        raise pytest.UsageError(f"FEDERATOR_SANDBOX_PARTS: unknown part(s) {sorted(unknown)}")
    if sandbox_module.PART_KUEUE in parts:
        parts |= {sandbox_module.PART_CLUSTERS}
    return parts or sandbox_module.ALL_PARTS


@pytest.fixture(scope="session")
def sandbox() -> SandboxEnv:
    """The running sandbox (started here if needed): `.kubeconfig`, `.s3`, `.root`."""

    def report(message: str) -> None:
        print(f"[sandbox] {message}", file=sys.stderr)

    try:
        return sandbox_module.up(parts=_parts(), report=report)
    except (ComponentFailed, BuildFailed) as error:
        pytest.fail(f"the sandbox did not come up:\n{error}", pytrace=False)


def unique_name(prefix: str) -> str:
    """A DNS-1123 and S3-safe name unique to this test run."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def namespace_factory(sandbox: SandboxEnv) -> Iterator[Callable[..., str]]:
    """`make(context="onprem", prefix="t", local_queue=None) -> name`: a fresh namespace.

    With `local_queue="q"` (onprem only) a Kueue LocalQueue `q` pointing at ClusterQueue
    `onprem` is created in it. Every namespace is deleted when the test ends.
    """
    created: list[tuple[str, str]] = []
    layout = Layout(sandbox.root)

    def make(context: str = "onprem", prefix: str = "t", local_queue: str | None = None) -> str:
        name = unique_name(prefix)
        api = KubeApi.for_site(layout, context)
        objects: list[dict[str, Any]] = [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        ]
        if local_queue is not None:
            objects.append(
                {
                    "apiVersion": "kueue.x-k8s.io/v1beta2",
                    "kind": "LocalQueue",
                    "metadata": {"name": local_queue, "namespace": name},
                    "spec": {"clusterQueue": "onprem"},
                }
            )

        async def apply_all() -> None:
            for obj in objects:
                await api.apply(obj)

        sandbox_module.run_sync(apply_all())
        created.append((context, name))
        return name

    yield make

    async def cleanup() -> None:
        for context, name in created:
            await KubeApi.for_site(layout, context).delete("Namespace", name)

    if created:
        sandbox_module.run_sync(cleanup())


@pytest.fixture
def bucket_factory(sandbox: SandboxEnv) -> Iterator[Callable[..., str]]:
    """`make(store="onprem", prefix="t") -> name`: a fresh, empty bucket on that store.

    Each bucket is emptied (objects, versions, unfinished multipart uploads) and deleted when
    the test ends.
    """
    created: list[tuple[str, str]] = []

    def make(store: str = "onprem", prefix: str = "t") -> str:
        name = unique_name(prefix)
        sandbox.boto3_client(store).create_bucket(Bucket=name)
        created.append((store, name))
        return name

    yield make

    for store, name in created:
        _delete_bucket(sandbox.boto3_client(store), name)


def _delete_bucket(s3: Any, bucket: str) -> None:
    uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    for upload in uploads:
        s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for entry in page.get("Versions", []) + page.get("DeleteMarkers", []):
            s3.delete_object(Bucket=bucket, Key=entry["Key"], VersionId=entry["VersionId"])
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for entry in page.get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=entry["Key"])
    s3.delete_bucket(Bucket=bucket)


SANDBOX_RERUNS = int(os.environ.get("FEDERATOR_TEST_RERUNS", "1"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run tests marked `sandbox_teardown` (they stop the whole sandbox) after all others.

    Tests on the real sandbox share one 16-GPU Kueue queue, three apiservers on 2 cores and
    wall-clock timing; one rerun of such a test absorbs a scheduling hiccup. pytest reports
    every rerun (`R` in the progress line and "N rerun" in the summary), so a test that needs
    it is visible, and a test that fails twice still fails the run. Pure unit tests never rerun.
    """
    items.sort(key=lambda item: item.get_closest_marker("sandbox_teardown") is not None)
    for item in items:
        on_sandbox = item.get_closest_marker("sandbox") is not None or "sandbox" in getattr(
            item, "fixturenames", ()
        )
        if on_sandbox and not item.get_closest_marker("flaky"):
            item.add_marker(pytest.mark.flaky(reruns=SANDBOX_RERUNS, reruns_delay=5))


LOG_TAIL_CHARS = 6000


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failed test that started processes (a daemon, a server) shows the end of their logs.

    The reliability scenarios write each process's output to `*.log` under the test's
    `tmp_path`; in CI that directory is gone once the run ends, so the tail goes into the
    report, where a timeout such as "waiting for two placements" can be explained.
    """
    outcome = yield
    report = outcome.get_result()
    tmp_path = getattr(item, "funcargs", {}).get("tmp_path")
    if report.when != "call" or not report.failed or not isinstance(tmp_path, Path):
        return
    for log in sorted(tmp_path.glob("*.log")):
        text = log.read_text(errors="replace")
        report.sections.append((f"tail of {log.name}", text[-LOG_TAIL_CHARS:]))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "sandbox_teardown: stops the whole sandbox (and restores it); runs after every other test",
    )
