"""The sync planner: what to copy, skip and delete, from two listings alone."""

from __future__ import annotations

import pytest

from federator.syncing.plans import (
    CopyReason,
    DeletePolicy,
    ListedObject,
    plan_sync,
    replication_lag_s,
)


def obj(key: str, size: int = 10, etag: str = "a" * 32, at: float = 100.0) -> ListedObject:
    return ListedObject(key=key, size=size, etag=etag, modified_at=at)


def test_identical_listings_copy_nothing() -> None:
    listing = [obj("a"), obj("b", etag="b" * 32)]
    plan = plan_sync(listing, listing)
    assert plan.copies == ()
    assert plan.skipped == 2
    assert plan.in_sync


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        pytest.param([], CopyReason.MISSING, id="missing at the target"),
        pytest.param([obj("k", size=11)], CopyReason.SIZE_DIFFERS, id="size differs"),
        pytest.param([obj("k", etag="f" * 32)], CopyReason.CONTENT_DIFFERS, id="new etag"),
    ],
)
def test_changed_or_missing_objects_are_copied_with_their_reason(
    target: list[ListedObject], reason: CopyReason
) -> None:
    plan = plan_sync([obj("k")], target)
    assert [(c.key, c.reason) for c in plan.copies] == [("k", reason)]
    assert plan.bytes_to_copy == 10


def test_a_verified_pair_makes_different_etags_count_as_the_same_bytes() -> None:
    source = [obj("k", etag="s" * 32)]
    target = [obj("k", etag="t" * 32 + "-3")]
    assert plan_sync(source, target).copies != ()
    plan = plan_sync(source, target, verified={"k": ("s" * 32, "t" * 32 + "-3")})
    assert plan.copies == ()
    assert plan.stale_verified == ()


def test_a_verified_pair_for_an_older_source_version_is_stale_and_the_object_is_copied() -> None:
    source = [obj("k", etag="n" * 32)]
    target = [obj("k", etag="t" * 32)]
    plan = plan_sync(source, target, verified={"k": ("s" * 32, "t" * 32), "gone": ("x", "y")})
    assert [c.key for c in plan.copies] == ["k"]
    assert plan.stale_verified == ("gone", "k")


def test_deletes_are_off_by_default_and_reported() -> None:
    plan = plan_sync([obj("a")], [obj("a"), obj("old")])
    assert plan.deletes == ()
    assert plan.held_back_deletes == ("old",)
    assert "deletes are off" in plan.delete_note


def test_deletes_within_the_cap_are_planned() -> None:
    target = [obj(f"k{i}") for i in range(100)]
    plan = plan_sync(target[1:], target, deletes=DeletePolicy(enabled=True, max_fraction=0.01))
    assert plan.deletes == ("k0",)
    assert plan.held_back_deletes == ()


def test_deletes_over_the_fraction_cap_are_all_held_back() -> None:
    target = [obj(f"k{i}") for i in range(100)]
    plan = plan_sync(target[2:], target, deletes=DeletePolicy(enabled=True, max_fraction=0.01))
    assert plan.deletes == ()
    assert plan.held_back_deletes == ("k0", "k1")
    assert "over the cap of 1" in plan.delete_note


def test_an_emptied_source_cannot_empty_the_replica() -> None:
    target = [obj(f"k{i}") for i in range(1000)]
    plan = plan_sync([], target, deletes=DeletePolicy(enabled=True, max_fraction=0.5))
    assert plan.deletes == ()
    assert len(plan.held_back_deletes) == 1000


def test_the_count_cap_applies_on_top_of_the_fraction() -> None:
    target = [obj(f"k{i}") for i in range(100)]
    policy = DeletePolicy(enabled=True, max_fraction=0.5, max_count=3)
    assert plan_sync(target[3:], target, deletes=policy).deletes == ("k0", "k1", "k2")
    assert plan_sync(target[4:], target, deletes=policy).deletes == ()


def test_lag_is_the_age_of_the_oldest_pending_change() -> None:
    plan = plan_sync([obj("a", at=50.0), obj("b", at=80.0)], [])
    assert replication_lag_s(plan, listed_at=90.0, now=100.0) == 50.0


def test_lag_of_a_replica_in_sync_is_the_time_since_it_was_checked() -> None:
    plan = plan_sync([obj("a")], [obj("a")])
    assert replication_lag_s(plan, listed_at=90.0, now=100.0) == 10.0


def test_deletes_wait_out_the_hold_back_from_when_the_source_object_went_missing() -> None:
    target = [obj(f"k{i}") for i in range(10)]
    policy = DeletePolicy(enabled=True, max_fraction=1.0, hold_back_s=60.0)
    first = plan_sync(target[1:], target, deletes=policy, now=1000.0)
    assert first.deletes == ()
    assert first.held_back_deletes == ("k0",)
    assert first.missing_since == {"k0": 1000.0}
    later = plan_sync(
        target[1:], target, deletes=policy, missing_since=first.missing_since, now=1061.0
    )
    assert later.deletes == ("k0",)


def test_an_object_back_at_the_source_forgets_when_it_went_missing() -> None:
    target = [obj("a")]
    plan = plan_sync(target, target, missing_since={"a": 5.0}, now=10.0)
    assert plan.missing_since == {}
