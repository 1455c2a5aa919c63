"""The spend book keeps the spend of jobs that are gone, until their day or month ends."""

from __future__ import annotations

import pytest

from federator.core.policy import DecisionPolicy
from federator.federation import Federation, FederationSettings
from federator.federation.records import Phase, PlacementRecord
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


def test_the_book_round_trips_and_a_foreign_text_is_refused() -> None:
    book = SpendBook(DAY, MONTH, 1.5, {"t": 2.5}, {"u": Contribution(0.5, 0.75, "t")})
    assert SpendBook.from_json(book.to_json()) == book
    for text in ("", "{}", '{"day": 1}', "[1, 2]"):
        with pytest.raises(ValueError, match="not a spend book"):
            SpendBook.from_json(text)


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
