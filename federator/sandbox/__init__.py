"""A local multi-cluster sandbox of real components for federator's tests and demo.

Three Kubernetes clusters (`onprem`, `cloud-a`, `cloud-b`: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and KWOK with fake GPU nodes each), the real Kueue
controller on `onprem`, and one S3 server per site, all as local processes on 127.0.0.1.

Clients use `load_env()` (or the pytest fixture `sandbox`) and the files it points to;
reliability tests use `stop_component` / `start_component` to take one piece away and bring
it back.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from federator.sandbox import binaries
from federator.sandbox.binaries import BuildFailed
from federator.sandbox.env import SandboxEnv, load_env
from federator.sandbox.layout import SITES, Layout
from federator.sandbox.orchestrator import (
    ALL_PARTS,
    PART_CLUSTERS,
    PART_KUEUE,
    PART_S3,
    ComponentStatus,
    Report,
    Sandbox,
    Stopped,
    needed_builds,
)
from federator.sandbox.probes import ComponentFailed

T = TypeVar("T")

__all__ = [
    "ALL_PARTS",
    "PART_CLUSTERS",
    "PART_KUEUE",
    "PART_S3",
    "SITES",
    "BuildFailed",
    "ComponentFailed",
    "ComponentStatus",
    "Layout",
    "Sandbox",
    "SandboxEnv",
    "Stopped",
    "down",
    "load_env",
    "run_sync",
    "start_component",
    "stop_component",
    "up",
]


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to completion even when called from inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _sandbox(root: Path | None, report: Report | None = None) -> Sandbox:
    return Sandbox(Layout(root) if root is not None else None, report)


def up(
    root: Path | None = None,
    parts: frozenset[str] = ALL_PARTS,
    report: Report | None = None,
    *,
    build: bool = True,
) -> SandboxEnv:
    """Bring the sandbox up (reusing whatever already runs) and return its environment.

    Programs missing from the build cache are built first (scripts/sandbox/build.sh) unless
    `build` is false, in which case a missing one fails the component that needs it.
    """
    if PART_KUEUE in parts:
        parts = parts | {PART_CLUSTERS}
    if build:
        missing = binaries.missing(needed_builds(parts))
        if missing:
            binaries.build(missing, report or (lambda _line: None))
    return run_sync(_sandbox(root, report).up(parts))


def down(root: Path | None = None) -> Stopped:
    """Stop every sandbox process; says what it stopped and which ports still listen."""
    return _sandbox(root).down()


def stop_component(site: str, name: str, *, kill: bool = False, root: Path | None = None) -> bool:
    """Stop one component, e.g. `stop_component("cloud-b", "apiserver")` or `("onprem", "s3")`.

    `kill=True` sends SIGKILL at once (a crash) instead of SIGTERM and a grace period.
    """
    return _sandbox(root).stop_component(site, name, kill=kill)


def start_component(site: str, name: str, *, root: Path | None = None) -> None:
    """Start one component again (after `stop_component`) and wait until it is ready."""
    run_sync(_sandbox(root).start_component(site, name))
