"""The rules that turn priced options into a decision, one function per `Strategy`.

Each function gets one job at the moment the on-prem replay says it would start (`wait_s` from
now; `inf` when it never would) and returns its `Decision`, charging the round's ledger when it
bursts. `federator` weighs every option in dollars; the others are the baselines of the
simulator, kept as simple as their definitions: `never`, `always` (cheapest on-demand as soon
as the job cannot start), `greedy-spot` (cheapest spot likewise) and `starburst` (ATC'24
Compute-Wait, see `starburst`). All of them respect opt-outs, tenant rules, residency, budgets,
caps and the policy file's `burst.min_wait`: a baseline that broke those would not be a fair
comparison.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from federator.core import reasons, starburst
from federator.core.choices import RoundOptions, Search
from federator.core.costs import STAY_TERM_NAMES, CloudEstimate, StayEstimate, price_stay
from federator.core.decisions import Breakdown, Decision, DecisionKind, Reason, Terms
from federator.core.models import CapacityType, PendingJob
from federator.core.policy import AtCap, Strategy

Choose = Callable[[PendingJob, float, RoundOptions], Decision]
# A decision's breakdown before it is a `Terms`: named figures (the stay's among them, last)
# and the priced cloud options that list their own terms.
Book = tuple[tuple[str, ...], tuple[float, ...], tuple[Breakdown, ...]]

# The names of each shape of book, built once: a round makes one book per pending job.
_PLAIN = STAY_TERM_NAMES
_BLOCKED = ("value_of_time_usd_per_hour", *STAY_TERM_NAMES)
_SEARCHED = (
    "value_of_time_usd_per_hour",
    "burst_bar_usd",
    "cloud_lower_bound_usd",
    *STAY_TERM_NAMES,
)
_TIMED = ("starburst_timeout_at", *STAY_TERM_NAMES)


def choose_federator(job: PendingJob, wait_s: float, options: RoundOptions) -> Decision:
    """Burst to the best-priced pool when it beats staying by the margin; else stay or hold."""
    policy = options.policy
    value = options.value_per_hour(job)
    stay = price_stay(
        job,
        wait_s=wait_s,
        now=options.now,
        policy=policy,
        value_per_hour=value,
        # No call per job when nothing is behind or the policy does not price it (the default).
        queue_usd=options.queue_usd(job, wait_s) if options.jobs_behind else 0.0,
    )
    blocker = options.burst_blocker(job)
    if blocker is not None:
        book: Book = (_BLOCKED, (value, *stay.term_values()), ())
        return _stay(job, stay, book, f"stays on-prem: {blocker}")
    total = stay.total_usd
    bar = _bar_usd(total, policy.burst_margin_fraction, policy.burst_margin_usd)
    found = options.search(job, value_per_hour=value, bar_usd=bar)
    book = (_SEARCHED, (value, bar, found.lower_bound_usd, *stay, total), ())
    best = found.best
    if best is not None and best.total_usd <= bar:
        return _take(job, stay, best, found.best_index, book, options)
    if found.blocked is not None and found.blocked.total_usd <= bar:
        return _at_cap(job, stay, found.blocked, book, options, str(found.blocked_by))
    margin = (policy.burst_margin_fraction, policy.burst_margin_usd, bar)
    return _why_staying(job, stay, book, found, margin)


def choose_never(job: PendingJob, wait_s: float, options: RoundOptions) -> Decision:
    stay = _plain_stay(job, wait_s, options)
    return _stay(job, stay, _plain_book(stay), "stays on-prem: the policy never bursts")


def choose_always(job: PendingJob, wait_s: float, options: RoundOptions) -> Decision:
    return _burst_when_blocked(job, wait_s, options, CapacityType.ON_DEMAND)


def choose_greedy_spot(job: PendingJob, wait_s: float, options: RoundOptions) -> Decision:
    return _burst_when_blocked(job, wait_s, options, CapacityType.SPOT)


def choose_starburst(job: PendingJob, wait_s: float, options: RoundOptions) -> Decision:
    """Burst once the Compute-Wait timeout has passed, or when the queue is over its cap."""
    stay = _plain_stay(job, wait_s, options)
    timeout = starburst.timeout_at(job, options.policy)
    book: Book = (_TIMED, (timeout, *stay.term_values()), ())
    timed_out = options.now >= timeout
    trimmed = not timed_out and wait_s > 0 and options.starburst_trimmed(job)
    if not (timed_out or trimmed):
        reason = Reason(_waiting_line, (timeout - options.now,))
        return _stay(job, stay, book, reason, revisit_at=timeout)
    blocker = options.burst_blocker(job)
    if blocker is not None:
        return _stay(job, stay, book, f"stays on-prem: {blocker}")
    option, index, why_not = options.cheapest(job, CapacityType.ON_DEMAND)
    if option is None:
        return _stay(job, stay, book, f"stays on-prem after its timeout: {why_not}")
    cause = "Compute-Wait timeout passed" if timed_out else "queue longer than its cap"
    too_soon = _too_soon(job, stay, book, options, f"{cause} for {option.offer.name}")
    if too_soon is not None:
        return too_soon
    return _burst(job, option, index, book, options, f"bursted to {option.offer.name}: {cause}")


def stay_while_clouds_full(job: PendingJob, wait_s: float, options: RoundOptions) -> Decision:
    """What every strategy decides once no job can burst anywhere this round and a cap means
    stay (`decide(plain_stays_when_full=True)`): the stay at the replayed wait, no pool priced."""
    stay = _plain_stay(job, wait_s, options)
    if wait_s <= 0:
        return _stay(job, stay, _plain_book(stay), "starts on-prem now")
    reason = "stays on-prem: no cloud can take a job this round (caps reached or no free GPUs)"
    return _stay(job, stay, _plain_book(stay), reason)


def _waiting_line(left_s: float) -> str:
    return f"stays on-prem: Compute-Wait timeout in {reasons.duration(left_s)}"


def _burst_when_blocked(
    job: PendingJob, wait_s: float, options: RoundOptions, capacity: CapacityType
) -> Decision:
    stay = _plain_stay(job, wait_s, options)
    book = _plain_book(stay)
    if wait_s <= 0:
        return _stay(job, stay, book, "starts on-prem now")
    blocker = options.burst_blocker(job)
    if blocker is not None:
        return _stay(job, stay, book, f"stays on-prem: {blocker}")
    option, index, why_not = options.cheapest(job, capacity)
    if option is None:
        return _stay(job, stay, book, f"stays on-prem: {why_not}")
    too_soon = _too_soon(
        job, stay, book, options, f"{option.offer.name} is the cheapest {capacity}"
    )
    if too_soon is not None:
        return too_soon
    reason = f"bursted to {option.offer.name}: cheapest {capacity}, cannot start on-prem now"
    return _burst(job, option, index, book, options, reason)


def _plain_stay(job: PendingJob, wait_s: float, options: RoundOptions) -> StayEstimate:
    value = options.value_per_hour(job)
    return price_stay(
        job, wait_s=wait_s, now=options.now, policy=options.policy, value_per_hour=value
    )


def _plain_book(stay: StayEstimate) -> Book:
    return (_PLAIN, stay.term_values(), ())


def _bar_usd(total: float, fraction: float, margin_usd: float) -> float:
    """The expected total a cloud option must not exceed to be worth leaving the queue, given
    staying's (`total`)."""
    if math.isinf(total):
        return math.inf
    return total * (1.0 - fraction) - margin_usd


def _take(
    job: PendingJob,
    stay: StayEstimate,
    option: CloudEstimate,
    index: int,
    book: Book,
    options: RoundOptions,
) -> Decision:
    """The cloud wins: burst now, or hold while the data copies, or wait out the hysteresis."""
    book = (book[0], book[1], (option,))
    too_soon = _too_soon(job, stay, book, options, f"{option.offer.name} would win")
    if too_soon is not None:
        return too_soon
    if option.held:
        versus = _versus_line(*_worth_figures(stay))
        reason = (
            f"held for {option.offer.name}: copying {reasons.size(option.transfer_bytes)} first "
            f"({reasons.duration(option.transfer_s)}), {reasons.usd(option.cost_usd)} expected "
            f"vs {versus}"
        )
        return _cloud_decision(
            job,
            option,
            book,
            DecisionKind.HOLD,
            reason,
            revisit_at=options.now + option.transfer_s,
        )
    line = Reason(_bursted_line, (option.offer.name, option.cost_usd, *_worth_figures(stay)))
    return _burst(job, option, index, book, options, line)


def _too_soon(
    job: PendingJob, stay: StayEstimate, book: Book, options: RoundOptions, would: str
) -> Decision | None:
    """A stay until the job has been pending `burst.min_wait`, or None once it has (every
    strategy honours it: it is the policy file's, not federator's own)."""
    pending_since = options.now - job.submitted_at
    minimum = options.policy.min_pending_before_burst_s
    if pending_since >= minimum:
        return None
    reason = (
        f"stays on-prem for now: {would}, but the job has been pending "
        f"{reasons.duration(pending_since)} of the {reasons.duration(minimum)} minimum"
    )
    return _stay(job, stay, book, reason, revisit_at=job.submitted_at + minimum)


def _bursted_line(pool: str, cost_usd: float, *worth: float) -> str:
    return f"bursted to {pool}: {reasons.usd(cost_usd)} expected vs {_versus_line(*worth)}"


# What staying costs, said one way in every line: the wait is worth its delay and deadline risk
# (`stay_delay_usd` + `stay_deadline_usd`); on-prem compute and the delay of the jobs queued
# behind are named apart, and only when the policy prices them (both are 0 by default).
_WorthFigures = tuple[float, float, float, float]


def _worth_figures(stay: StayEstimate) -> _WorthFigures:
    """Plain numbers for `_versus_line` and `_worth`: a Reason keeps no estimate alive."""
    return (stay.wait_s, stay.delay_usd + stay.deadline_usd, stay.compute_usd, stay.queue_usd)


def _versus_line(wait_s: float, wait_usd: float, compute_usd: float, queue_usd: float) -> str:
    if math.isinf(wait_s):
        return "never starting on-prem (too big for the free cluster)"
    worth = _worth(wait_usd, compute_usd, queue_usd)
    return f"{reasons.duration(wait_s)} expected on-prem wait {worth}"


def _worth(wait_usd: float, compute_usd: float, queue_usd: float) -> str:
    """ "worth $9.60", with " + $40 on-prem compute" and " + $3.00 for the jobs queued behind"
    when those are priced: together, staying's whole total."""
    text = f"worth {reasons.usd(wait_usd)}"
    if compute_usd:
        text += f" + {reasons.usd(compute_usd)} on-prem compute"
    if queue_usd:
        text += f" + {reasons.usd(queue_usd)} for the jobs queued behind"
    return text


def _at_cap(
    job: PendingJob,
    stay: StayEstimate,
    option: CloudEstimate,
    book: Book,
    options: RoundOptions,
    blocked_by: str,
) -> Decision:
    book = (book[0], book[1], (option,))
    would = f"{option.offer.name} at {reasons.usd(option.cost_usd)} would exceed {blocked_by}"
    if options.policy.budgets.at_cap is AtCap.HOLD:
        # A hold says the job is going to that pool once the cap clears; a job pending for less
        # than `burst.min_wait` is not going anywhere yet, whatever the cap (as for a burst).
        too_soon = _too_soon(job, stay, book, options, f"it would be held ({would})")
        if too_soon is not None:
            return too_soon
        return _cloud_decision(job, option, book, DecisionKind.HOLD, f"held: {would}")
    return _stay(job, stay, book, f"stays on-prem: {would}")


def _why_staying(
    job: PendingJob,
    stay: StayEstimate,
    book: Book,
    found: Search,
    margin: tuple[float, float, float],
) -> Decision:
    """A stay because no option clears the bar (`margin`: the policy's margin fraction and
    dollars, and the bar): the reason names the best option priced, or the one a budget or
    cap rules out, and that option's terms go into the breakdown."""
    if stay.wait_s <= 0:
        return _stay(job, stay, book, "starts on-prem now")
    option = found.best or found.blocked
    if option is None and math.isinf(found.lower_bound_usd):
        return _stay(job, stay, book, f"stays on-prem: no cloud pool fits {job.gpus} GPUs")
    if option is None:
        cloud: tuple[str | None, float] = (None, found.lower_bound_usd)
        blocked: tuple[str | None, float] = (None, 0.0)
    else:
        book = (book[0], book[1], (option,))
        cloud = (option.offer.name, option.total_usd)
        blocked = (None, 0.0) if found.best else (found.blocked_by, option.cost_usd)
    # Plain numbers and names only: the line keeps no estimate alive until it is read.
    figures = (*_worth_figures(stay), stay.total_usd, *cloud, *margin, *blocked)
    return _stay(job, stay, book, Reason(_staying_line, figures))


def _staying_line(
    wait_s: float,
    wait_usd: float,
    compute_usd: float,
    queue_usd: float,
    stay_usd: float,
    pool: str | None,
    cloud_usd: float,
    margin_fraction: float,
    margin_usd: float,
    bar_usd: float,
    blocked_by: str | None,
    blocked_cost_usd: float,
) -> str:
    cloud = (
        f"{pool} at {reasons.usd(cloud_usd)}"
        if pool is not None
        else f"any cloud pool (at least {reasons.usd(cloud_usd)})"
    )
    worth = f"{reasons.duration(wait_s)} expected wait {_worth(wait_usd, compute_usd, queue_usd)}"
    if cloud_usd >= stay_usd:  # a tie stays too
        line = f"stays on-prem: {worth} beats {cloud}"
    else:  # the cloud is cheaper, but not by the margin
        margin = _margin(margin_fraction, margin_usd)
        line = (
            f"stays on-prem: {cloud} does not clear the {margin} margin against {worth} "
            f"(bar {reasons.usd(bar_usd)})"
        )
    if blocked_by is not None:
        line += f"; its {reasons.usd(blocked_cost_usd)} would also exceed {blocked_by}"
    return line


def _margin(fraction: float, usd: float) -> str:
    """The burst margin as the policy sets it: "10%", "$5.00" or "10% + $5.00"."""
    parts = [f"{fraction * 100:g}%"] if fraction else []
    if usd or not parts:
        parts.append(reasons.usd(usd))
    return " + ".join(parts)


def _stay(
    job: PendingJob,
    stay: StayEstimate,
    book: Book,
    reason: str | Reason,
    *,
    revisit_at: float | None = None,
) -> Decision:
    # This runs once per staying job: the fields go to tuple.__new__ directly, as all twelve
    # are given (NamedTuple's own __new__ is a Python function that does only this).
    wait = stay.wait_s
    return _new_decision(Decision, (
        job.key, _STAY, None, None, stay.compute_usd, wait, wait + stay.runtime_s,
        Terms(*book), reason, None, revisit_at, job.gpus,
    ))  # fmt: skip


def _burst(
    job: PendingJob,
    option: CloudEstimate,
    index: int,
    book: Book,
    options: RoundOptions,
    reason: str | Reason,
) -> Decision:
    options.ledger.charge(job, index, option.cost_usd)
    if not book[2]:
        book = (book[0], book[1], (option,))
    return _cloud_decision(job, option, book, DecisionKind.BURST, reason)


def _cloud_decision(
    job: PendingJob,
    option: CloudEstimate,
    book: Book,
    kind: DecisionKind,
    reason: str | Reason,
    *,
    revisit_at: float | None = None,
) -> Decision:
    offer = option.offer
    return _new_decision(Decision, (
        job.key, kind, offer.cluster, offer.pool, option.cost_usd, option.wait_s,
        option.completion_s, Terms(*book), reason, offer.capacity_type, revisit_at, job.gpus,
    ))  # fmt: skip


_STAY = DecisionKind.STAY
_new_decision = tuple.__new__

STRATEGIES: dict[Strategy, Choose] = {
    Strategy.FEDERATOR: choose_federator,
    Strategy.STARBURST: choose_starburst,
    Strategy.NEVER: choose_never,
    Strategy.ALWAYS: choose_always,
    Strategy.GREEDY_SPOT: choose_greedy_spot,
}
