"""The spend ledger: what the bursts cost, as the budgets and the spend counter see it.

Spend is read from the placement records on the on-prem Jobs at every pass (`spend`), plus
what jobs that are gone had spent in the same day and month: the `SpendBook`, a value
(`spending.py`) that this ledger loads once from the `SpendStore`, carries forward each pass
and writes back when it changed. The ledger also feeds the `federator_cloud_spend_usd_total`
counter with what each job accrued since the last pass, on the leader only.

The federation loop creates one ledger and asks it for the pass's `Spend` after convergence.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace

import structlog

from federator import errors, metrics
from federator.core.models import Spend
from federator.federation import lost_copies
from federator.federation.charges import JobRecord, count_spend
from federator.federation.ports import CloudView, OnPremView, SpendStore
from federator.federation.records import Phase, PlacementRecord
from federator.federation.reports import PassReport
from federator.federation.spending import SpendBook

log = structlog.get_logger(__name__)

BOOK_REFRESH_S = 300.0  # the spend book is rewritten at least this often while jobs run


class SpendLedger:
    """The pass's spend from the live records and the spend book, and the spend counter."""

    def __init__(self, store: SpendStore | None, *, may_write: Callable[[], bool]) -> None:
        self.store = store  # fenced by the federation, like every write
        self._may_write = may_write  # only the leader counts spend (`_count_spend`)
        self._book: SpendBook | None = None  # None until loaded (or without a store)
        self._saved_book: SpendBook | None = None
        self._book_saved_at = -math.inf
        # accrued spend per job uid, for the spend counter (None until the first pass seeds it)
        self._spent: dict[str, float] | None = None

    def spend(self, onprem: OnPremView, now: float) -> Spend:
        """The spend the budgets see this pass: the live records' attempts and the gone jobs'
        spend from the book, since the hour, day and month began (`charges.count_spend`), and
        the bursts running now."""
        jobs = [
            JobRecord(job.uid, job.spec.tenant, job.record, job.returned_record)
            for job in onprem.jobs
            if job.record is not None or job.returned_record is not None
        ]
        accrued = _accrued(jobs, now)
        accrued.update(_settled_orphans(self._book))
        self._count_spend(accrued, counting=self._may_write())
        count = count_spend(jobs, self._book, now)
        self._book = count.book
        return replace(
            _bursts(job.record for job in jobs if job.record is not None),
            last_hour_usd=count.hour_counted,
            today_usd=count.today_spent + count.committed_total,
            tenant_month_usd=count.month_counted,
        )

    def settle_orphans(
        self, clouds: Mapping[str, CloudView], now: float, report: PassReport
    ) -> None:
        """Settle each copy the book keeps for a Job that is gone (`SpendBook.orphans`) whose
        cluster now shows it stopped, as `lost_copies.stopped_at` says for any lost copy; the
        book, written at the end of the pass, keeps its end. Before the write a crash leaves it
        to the next leader, which settles it no earlier (the budgets' safe side)."""
        book = self._book
        if book is None:
            return
        # By identity: `ends_known` hands back the very copies it was given.
        keys = {id(kept.lost): key for key, kept in book.orphans.items()}
        copies = [kept.lost for kept in book.orphans.values() if kept.lost is not None]
        known = lost_copies.ends_known(copies, clouds, now)
        if not known:
            return
        self._book = book.settled({keys[id(lost)]: end for lost, end in known})
        for lost, end in known:
            key = keys[id(lost)]
            hours, usd = max(0.0, end - lost.since) / 3600.0, lost.cost_usd(end)
            report.actions.append(
                f"settle {key}: lost copy of a Job that is gone, {hours:.2f} h, ${usd:.2f}"
            )
            log.info(
                "lost_copy_settled",
                key=key,
                cluster=lost.cluster,
                copy=lost.name,
                hours=round(hours, 4),
                usd=round(usd, 4),
            )

    async def load(self) -> None:
        """Read the spend book once (a failure is retried next pass; budgets meanwhile count
        only the jobs that are still there)."""
        if self.store is None or self._book is not None:
            return
        try:
            self._book = self._saved_book = await self.store.load()
        except errors.FederatorError as e:
            log.warning("spend_book_not_loaded", error=str(e))

    async def save(self, now: float) -> None:
        """Write the book when its jobs or totals changed, or every `BOOK_REFRESH_S`."""
        book, saved = self._book, self._saved_book
        if self.store is None or book is None:
            return
        if (
            saved is not None
            and book.same_jobs(saved)
            and now - self._book_saved_at < BOOK_REFRESH_S
        ):
            return
        try:
            await self.store.save(book)
        except errors.FederatorError as e:
            log.warning("spend_book_not_saved", error=str(e))
            return
        self._saved_book, self._book_saved_at = book, now

    def _count_spend(self, accrued: Mapping[str, tuple[str, float]], *, counting: bool) -> None:
        """Add what each job, and each copy lost with its cluster, accrued since the last pass
        to its cluster's spend counter.

        Keyed by uid (a Job deleted and created again under its name is another job), a lost
        copy by its own key (`LostCopy.key`) on the cluster it ran on, once settled, whether
        its job has a record or only keeps one; kept to the jobs still there. The first pass
        of a process only takes note: the records hold every burst's cost since it began, and
        counting it again after a restart would show past spend as a spike of new spend. A
        requeue's lost attempt lands in `earlier_usd` while the record still names its
        cluster, so each attempt is counted where it ran.
        Only the leader counts (`counting`); a follower still takes note, so that when it
        leads it counts from there and not all the spend since it started.
        """
        last = self._spent
        if last is not None and counting:
            for uid, (cluster, usd) in accrued.items():
                delta = usd - last.get(uid, 0.0)
                if delta > 0:
                    metrics.CLOUD_SPEND_USD.labels(cluster=cluster).inc(delta)
        self._spent = {
            uid: max(usd, last.get(uid, 0.0) if last else 0.0) for uid, (_, usd) in accrued.items()
        }


def _accrued(jobs: Iterable[JobRecord], now: float) -> dict[str, tuple[str, float]]:
    """Each job's cluster and what all its attempts cost by `now`, by uid, and each settled
    lost copy's cluster and what it cost, by its key: the spend counter's input.

    A lost copy is counted once settled, at its cost to its end: counted as it accrued, a
    copy that finished early in a long partition was counted to the pass that settled it, and
    a counter cannot go back down ($114.83 counted for a $10 copy). The budgets count it as
    running meanwhile (`charges`); the counter says what was spent."""
    accrued: dict[str, tuple[str, float]] = {}
    for job in jobs:
        for lost in job.lost_copies:
            if lost.settled:
                accrued[lost.key(job.uid)] = (lost.cluster, lost.cost_usd(now))  # fixed: settled
        record = job.record
        if record is not None:
            accrued[job.uid] = (record.cluster, record.earlier_usd + record.attempt_cost_usd(now))
    return accrued


def _settled_orphans(book: SpendBook | None) -> dict[str, tuple[str, float]]:
    """The spend counter's input for the orphans settled this pass (`settle_orphans`): each
    one's cluster and fixed cost, by its key. The book drops them at this pass's carry, so each
    is counted once."""
    found: dict[str, tuple[str, float]] = {}
    for key, kept in book.orphans.items() if book is not None else ():
        if kept.lost is not None and kept.lost.ended_at is not None:
            found[key] = (kept.lost.cluster, kept.lost.cost_usd(kept.lost.ended_at))
    return found


def _bursts(records: Iterable[PlacementRecord]) -> Spend:
    """The bursts running now (placing or placed), in all and per cluster, as a `Spend` with no
    money in it yet: what the caps on how much federator runs in the clouds at once count."""
    jobs = gpus = 0
    cluster_jobs: dict[str, int] = {}
    cluster_gpus: dict[str, int] = {}
    for record in records:
        if record.phase in (Phase.PLACING, Phase.PLACED):
            jobs += 1
            gpus += record.gpus
            cluster_jobs[record.cluster] = cluster_jobs.get(record.cluster, 0) + 1
            cluster_gpus[record.cluster] = cluster_gpus.get(record.cluster, 0) + record.gpus
    return Spend(
        bursted_jobs=jobs,
        bursted_gpus=gpus,
        cluster_bursted_jobs=cluster_jobs,
        cluster_bursted_gpus=cluster_gpus,
    )
