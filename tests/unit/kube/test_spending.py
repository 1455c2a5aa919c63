"""The spend book keeps the spend of jobs that are gone, until their day or month ends."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from federator.core.policy import DecisionPolicy
from federator.federation import Federation, FederationSettings
from federator.federation.records import LostCopy, Phase, PlacementRecord
from federator.federation.spending import Contribution, SpendBook
from tests.unit.kube.fakes import FakeCloud, FakeOnPrem
from tests.unit.kube.test_federation_loop import Offers, Scripted, offer

DAY, MONTH = "2026-11-29", "2026-11"


def test_a_job_that_vanishes_keeps_its_last_contribution_for_the_day_and_month() -> None:
    book = SpendBook().carry(
        {"u1": Contribution(3.0, 5.0, "team-a"), "u2": Contribution(1.0, 1.0, "team-b")},
        day=DAY,
        month=MONTH,
    )
    after = book.carry({"u2": Contribution(2.0, 2.0, "team-b")}, day=DAY, month=MONTH)
    assert after.gone_today_usd == 3.0
    assert dict(after.gone_month_usd) == {"team-a": 5.0}
    assert set(after.seen) == {"u2"}
    assert after.carry(after.seen, day=DAY, month=MONTH) == after, "nothing gone: no change"


def test_a_new_day_forgets_yesterday_and_a_new_month_forgets_last_month() -> None:
    book = SpendBook(DAY, MONTH, 3.0, {"team-a": 5.0}, {"u9": Contribution(1.0, 1.0, "team-a")})
    tomorrow = book.carry({}, day="2026-11-30", month=MONTH)
    assert tomorrow.gone_today_usd == 0.0, "u9's spend was yesterday's"
    assert dict(tomorrow.gone_month_usd) == {"team-a": 6.0}
    next_month = tomorrow.carry({}, day="2026-12-01", month="2026-12")
    assert (next_month.gone_today_usd, dict(next_month.gone_month_usd)) == (0.0, {})


LOST = LostCopy("cloud-b", "team-a", "j1-u1-1", 1, usd_per_hour=8.0, since=1000.0)


def test_the_book_round_trips_and_a_foreign_text_is_refused() -> None:
    copy = Contribution(0.25, 0.25, "t", LOST)
    orphan = Contribution(1.0, 1.0, "t", replace(LOST, name="j2-u2-1", ended_at=2000.0))
    book = SpendBook(
        DAY, MONTH, 1.5, {"t": 2.5}, {"u": Contribution(0.5, 0.75, "t"), "u/lost": copy},
        {"u2/lost": orphan},
    )  # fmt: skip
    assert SpendBook.from_json(book.to_json()) == book
    for text in ("", "{}", '{"day": 1}', "[1, 2]"):
        with pytest.raises(ValueError, match="not a spend book"):
            SpendBook.from_json(text)
    bad = json.loads(book.to_json())
    bad["orphans"]["u2/lost"].append("more")
    with pytest.raises(ValueError, match="not a spend book: a contribution of 5 items"):
        SpendBook.from_json(json.dumps(bad))


def test_a_book_written_before_orphans_were_kept_still_loads() -> None:
    old = '{"day":"2026-11-29","gone_month_usd":{"t":2.5},"gone_today_usd":1.5,'
    old += '"month":"2026-11","seen":{"u":[0.5,0.75,"t"]}}'
    book = SpendBook.from_json(old)
    assert book == SpendBook(DAY, MONTH, 1.5, {"t": 2.5}, {"u": Contribution(0.5, 0.75, "t")})


def test_an_unsettled_lost_copy_whose_job_went_is_kept_until_settled_then_gone() -> None:
    """The book keeps an unsettled lost copy of a vanished job as an orphan; a settled one
    leaves the orphans at the next carry, and its last contribution the pass after."""
    key = LOST.key("u1")
    book = SpendBook().carry({key: Contribution(1.0, 1.0, "team-a", LOST)}, day=DAY, month=MONTH)
    orphans = book.orphans_besides({})
    assert set(orphans) == {key}, "its Job went: counted on"
    book = book.carry(orphans, day=DAY, month=MONTH, orphans=orphans)
    assert set(book.orphans) == {key}
    assert book.gone_today_usd == 0.0, "not gone while it may run"
    settled = book.settled({key: 1900.0})
    assert settled.orphans[key].lost == replace(LOST, ended_at=1900.0)
    assert not settled.same_jobs(book), "settling is written"
    final = {key: Contribution(2.0, 2.0, "team-a", settled.orphans[key].lost)}
    assert settled.orphans_besides({}) == settled.orphans, "counted once more, settled"
    after = settled.carry(final, day=DAY, month=MONTH, orphans=final)
    assert not after.orphans
    done = after.carry({}, day=DAY, month=MONTH, orphans=after.orphans_besides({}))
    assert (done.gone_today_usd, dict(done.gone_month_usd)) == (2.0, {"team-a": 2.0})
    assert not done.orphans_besides({}), "a settled copy is no orphan"


def test_a_lost_copy_settled_on_its_record_is_written_at_once() -> None:
    """Else a restart reading the book before the next refresh, whose Job then went, would
    take the settled copy for one that may still run, and count it on as an orphan."""
    running = SpendBook().carry({"k": Contribution(1.0, 1.0, "t", LOST)}, day=DAY, month=MONTH)
    ended = replace(LOST, ended_at=1900.0)
    settled = running.carry({"k": Contribution(1.0, 1.0, "t", ended)}, day=DAY, month=MONTH)
    assert not settled.same_jobs(running)
    assert settled.carry(settled.seen, day=DAY, month=MONTH).same_jobs(settled)


class MemoryStore:
    def __init__(self) -> None:
        self.book = SpendBook()
        self.saves = 0

    async def load(self) -> SpendBook:
        return self.book

    async def save(self, book: SpendBook) -> None:
        self.book, self.saves = book, self.saves + 1


async def test_a_deleted_job_still_counts_against_the_budget_after_a_restart() -> None:
    now = 1_800_000_000.0  # 2027-01-15 08:00 UTC
    onprem, store = FakeOnPrem(), MemoryStore()
    job = onprem.add("j1", 2)
    job.record = PlacementRecord(
        "cloud-a", "spot", 1, Phase.DONE, placed_at=now - 3600, gpus=2,
        price_per_gpu_hour_usd=2.0, finished_at=now - 1800,
    )  # fmt: skip

    def federation() -> Federation:
        return Federation(
            onprem=onprem, clouds={"cloud-a": FakeCloud("cloud-a")}, policy=DecisionPolicy(),
            offers=Offers([offer("cloud-a")]), settings=FederationSettings(interval_s=10),
            decide=Scripted(), spend_store=store,
        )  # fmt: skip

    first = federation()
    report = await first.run_once(now)
    assert report.spend is not None
    assert report.spend.today_usd == pytest.approx(2.0)  # 30 min of 2 GPUs at $2
    del onprem.jobs["team-a/j1"]  # its owner deletes the finished Job
    report = await first.run_once(now + 60)
    assert report.spend is not None
    assert report.spend.today_usd == pytest.approx(2.0), "the spend stays after the deletion"
    assert store.saves >= 1

    restarted = federation()
    report = await restarted.run_once(now + 120)
    assert report.spend is not None
    assert report.spend.today_usd == pytest.approx(2.0), "and a restart remembers it"
