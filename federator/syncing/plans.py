"""Sync planning: from a source listing and a target listing, what to copy, skip or delete.

Decisions use only what a paginated ListObjectsV2 returns (key, size, ETag, LastModified), so a
re-sync where nothing changed costs two listings and no per-object HEAD. Two objects hold the
same bytes when their sizes match and either their ETags are equal (the copy engine reproduces
the source's part layout, so an exact copy has the source's ETag) or the target's sync state
recorded that this target ETag was verified against this source ETag (copies whose layout could
not be reproduced).

Deletes are off by default. When enabled they are held back until every copy succeeded, and
capped: if more than `max_fraction` of the target's objects (or more than `max_count`) would go,
none are deleted and the plan says why, so a mistaken source deletion cannot empty a replica.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from federator.syncing.throttling import LimiterStats


@dataclass(frozen=True, slots=True)
class ListedObject:
    """One object as a listing shows it; `key` is relative to the listed prefix."""

    key: str
    size: int
    etag: str  # without quotes
    modified_at: float  # epoch seconds


@dataclass(frozen=True, slots=True)
class DeletePolicy:
    """Whether objects missing at the source are removed from the target, and the cap on it."""

    enabled: bool = False
    max_fraction: float = 0.01  # of the target's objects; 0.01 = at most 1 % per sync
    max_count: int | None = None  # an absolute cap on top of the fraction; None: no count cap
    hold_back_s: float = 0.0  # delete only what has been missing from the source this long


class CopyReason(StrEnum):
    MISSING = "missing at the target"
    SIZE_DIFFERS = "size differs"
    CONTENT_DIFFERS = "content differs"


@dataclass(frozen=True, slots=True)
class CopyItem:
    key: str
    size: int
    source_etag: str
    source_modified_at: float
    reason: CopyReason


@dataclass(frozen=True, slots=True)
class SyncPlan:
    copies: tuple[CopyItem, ...]
    skipped: int  # objects already identical at the target
    deletes: tuple[str, ...]  # to apply only after every copy succeeded
    held_back_deletes: tuple[str, ...]  # over the cap: not deleted, reported
    delete_note: str  # one human line about deletes ("" when there is nothing to say)
    stale_verified: tuple[str, ...] = ()  # verified pairs that no longer describe the source
    missing_since: Mapping[str, float] = field(default_factory=dict)  # target-only keys: since
    missing_since_changed: bool = False  # differs from the map the plan was given: save it

    @property
    def bytes_to_copy(self) -> int:
        return sum(item.size for item in self.copies)

    @property
    def oldest_pending_at(self) -> float | None:
        """When the oldest change not yet at the target happened (None: nothing pending)."""
        return min((item.source_modified_at for item in self.copies), default=None)

    @property
    def in_sync(self) -> bool:
        return not self.copies and not self.deletes

    @property
    def needs_run(self) -> bool:
        """True when only a run makes the target right: objects to copy, deletes due, or a
        hold-back clock to save (only a run saves the sync state, and a clock never saved
        would start again at every plan, so nothing would ever be old enough to delete)."""
        return bool(self.copies or self.deletes or self.missing_since_changed)


@dataclass(frozen=True, slots=True)
class SyncReport:
    plan: SyncPlan
    listed_at: float  # epoch seconds of the listings the plan came from
    dry_run: bool
    copied: int = 0
    bytes_copied: int = 0
    resumed_parts: int = 0
    recopied_after_change: int = 0
    vanished: int = 0
    deleted: int = 0
    aborted_uploads: int = 0
    failures: tuple[tuple[str, str], ...] = ()  # (key, message)
    seconds: float = 0.0
    throttling: tuple[LimiterStats, ...] = ()  # per endpoint, when a store throttled the copy

    @property
    def ok(self) -> bool:
        return not self.failures


# A target ETag that the sync state verified against a source ETag: (source_etag, target_etag).
VerifiedPairs = Mapping[str, tuple[str, str]]


def holds_same_bytes(
    source: ListedObject, target: ListedObject, verified: VerifiedPairs | None = None
) -> bool:
    """True when the target object is a verified copy of the source object."""
    if source.size != target.size:
        return False
    if source.etag == target.etag:
        return True
    pair = (verified or {}).get(source.key)
    return pair == (source.etag, target.etag)


def plan_sync(
    source: Iterable[ListedObject],
    target: Iterable[ListedObject],
    *,
    verified: VerifiedPairs | None = None,
    deletes: DeletePolicy = DeletePolicy(),
    missing_since: Mapping[str, float] | None = None,
    now: float = 0.0,
) -> SyncPlan:
    """Decide what makes `target` equal to `source`; see the module docstring for the rules.

    `missing_since` is when each target-only key was first seen missing from the source (from
    earlier plans); with `now` it drives the delete hold-back. The plan returns the updated map.
    """
    target_by_key = {item.key: item for item in target}
    copies: list[CopyItem] = []
    skipped = 0
    source_etags: dict[str, str] = {}
    for item in source:
        source_etags[item.key] = item.etag
        reason = _copy_reason(item, target_by_key.get(item.key), verified)
        if reason is None:
            skipped += 1
            continue
        copies.append(CopyItem(item.key, item.size, item.etag, item.modified_at, reason))
    extra = sorted(key for key in target_by_key if key not in source_etags)
    since = {key: (missing_since or {}).get(key, now) for key in extra}
    ripe = [key for key in extra if now - since[key] >= deletes.hold_back_s]
    allowed, held, note = _cap_deletes(ripe, target_count=len(target_by_key), policy=deletes)
    waiting = tuple(key for key in extra if key not in set(ripe))
    if deletes.enabled and waiting:
        note = "; ".join(filter(None, [note, f"{len(waiting)} delete(s) wait out the hold-back"]))
    copies.sort(key=lambda c: c.key)
    stale = _stale_verified(verified or {}, source_etags)
    return SyncPlan(
        tuple(copies),
        skipped,
        allowed,
        tuple(sorted(held + waiting)),
        note,
        stale,
        since,
        missing_since_changed=since != dict(missing_since or {}),
    )


def _stale_verified(verified: VerifiedPairs, source_etags: Mapping[str, str]) -> tuple[str, ...]:
    return tuple(sorted(key for key, pair in verified.items() if source_etags.get(key) != pair[0]))


def _copy_reason(
    source: ListedObject, target: ListedObject | None, verified: VerifiedPairs | None
) -> CopyReason | None:
    if target is None:
        return CopyReason.MISSING
    if source.size != target.size:
        return CopyReason.SIZE_DIFFERS
    if not holds_same_bytes(source, target, verified):
        return CopyReason.CONTENT_DIFFERS
    return None


def _cap_deletes(
    extra: list[str], *, target_count: int, policy: DeletePolicy
) -> tuple[tuple[str, ...], tuple[str, ...], str]:
    if not extra:
        return (), (), ""
    if not policy.enabled:
        return (), tuple(extra), f"{len(extra)} object(s) gone at the source kept: deletes are off"
    cap = int(target_count * policy.max_fraction)
    if policy.max_count is not None:
        cap = min(cap, policy.max_count)
    if len(extra) > cap:
        return (
            (),
            tuple(extra),
            (
                f"{len(extra)} delete(s) held back: over the cap of {cap} "
                f"({policy.max_fraction:.1%} of {target_count} objects"
                + (f", at most {policy.max_count}" if policy.max_count is not None else "")
                + "); check the source, then raise the cap or delete by hand"
            ),
        )
    return tuple(extra), (), f"{len(extra)} object(s) gone at the source will be deleted"


def replication_lag_s(plan: SyncPlan, *, listed_at: float, now: float) -> float:
    """The RPO: age of the oldest source change not yet at the target, as of `now`.

    With nothing pending, the replica was known complete when the source was listed, so the lag
    is the time since that listing (an upper bound: a change right after it is not seen yet).
    """
    oldest = plan.oldest_pending_at
    since = listed_at if oldest is None else min(oldest, listed_at)
    return max(0.0, now - since)
