"""Sync back: bring the versions a cloud's staging registry has home to the on-prem registry.

A round lists both registries and copies only the versions missing at the target, each one
blobs first, manifest last (`registry.ModelRegistry.receive_version`), so a version appears at
the target whole or not at all. It is idempotent: a version already there with the same
manifest counts as done. One version that fails is reported and does not stop the others; a
shutdown ends the round between versions and names those it left for the next one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from federator.storage.registry import ModelRegistry


@dataclass(frozen=True, slots=True)
class SyncBackReport:
    versions_copied: tuple[str, ...]  # "name@version"
    versions_present: int
    blobs_copied: int
    blobs_present: int
    bytes_copied: int
    failures: tuple[tuple[str, str], ...]  # ("name@version", message)
    # Versions to copy that a shutdown kept the round from reaching: the next round copies them.
    left_for_next_round: int = 0
    versions_left: tuple[str, ...] = ()  # "name@version" of those, for a report to name them


def sync_back(
    source: ModelRegistry,
    target: ModelRegistry,
    *,
    only: Callable[[str], bool] | None = None,
) -> SyncBackReport:
    """Copy every version `source` has and `target` lacks (optionally only some models)."""
    have = set(target._all_versions())
    wanted = [(n, v) for n, v in source._all_versions() if only is None or only(n)]
    missing = [nv for nv in wanted if nv not in have]
    copied: list[str] = []
    failures: list[tuple[str, str]] = []
    blobs = bytes_sent = blobs_present = 0
    left: list[tuple[str, str]] = []
    for index, (name, version) in enumerate(missing):
        if target.stopping.is_set():
            left = missing[index:]  # shutting down: the next process's round copies them
            break
        try:
            manifest = source.manifest(name, version)
            blobs_present += sum(1 for f in manifest.files if target.has_blob(f))
            count, sent = target.receive_version(source, name, version)
        # One bad version must not block the others; it is reported and retried next round.
        except Exception as error:  # noqa: BLE001
            failures.append((f"{name}@{version}", f"{type(error).__name__}: {error}"))
            continue
        copied.append(f"{name}@{version}")
        blobs += count
        bytes_sent += sent
    present = len(wanted) - len(missing)
    return SyncBackReport(
        tuple(copied),
        present,
        blobs,
        blobs_present,
        bytes_sent,
        tuple(failures),
        len(left),
        tuple(f"{name}@{version}" for name, version in left),
    )
