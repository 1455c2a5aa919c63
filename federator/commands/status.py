"""`federator status`: what federator has done and holds right now, read from Kubernetes.

`plan` shows what the cost model would decide; this shows what federator did and keeps: the
leader, the jobs running as cloud copies (their placement records), the spend against every
budget (the records plus the spend book), and the pools blocked after a loss. It reads only
objects on the on-prem cluster, where all of that state lives, so it works while a cloud is
down, and it writes nothing; `--clouds` also reads each cloud's copies (`status_copies`).

This module is the command and the reading: it reads those objects once and turns them into a
`FleetStatus` (status_fleet); `status_view` shows that value as tables or as `--json`.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from federator.commands.options import add_policy_file_option
from federator.commands.output import new_console
from federator.commands.status_fleet import (
    BlockedPool,
    BudgetLine,
    BurstedJob,
    CloudLine,
    FleetStatus,
    Leader,
    OrphanCopy,
)

if TYPE_CHECKING:
    from federator import policy
    from federator.federation.blocks import PoolBlocks
    from federator.federation.charges import SpendCount
    from federator.federation.ports import CopyView
    from federator.federation.records import PlacementRecord
    from federator.federation.spending import SpendBook
    from federator.kube.clients import Cluster

DESCRIPTION = """\
Connect to the on-prem cluster and show what federator has done and holds right now, read
only from the Kubernetes objects it keeps there (nothing is written, and no cloud is asked
unless --clouds):

  leader        the holder of the leader Lease and how long ago it renewed, or "no leader"
  bursted jobs  every on-prem Job with a live placement record: where its cloud copy runs
                (cluster/pool), attempt, preemptions, the copy's state as last mirrored,
                since when, the cost the model expected and what has accrued so far
  spend         the last hour, today and this month (UTC) against every cap the policy sets
                (budgets.usd_per_hour, usd_per_day, each tenant's monthly cap): spent is what
                has accrued, jobs that are gone included (the spend book); committed is the
                rest of what running placements are expected to cost, which budgets count too
  blocked pools the pools that get no new job until a time, after a preemption or a start
                timeout of a job there (ConfigMap <instance>-pool-blocks)
  clouds        each cloud cluster: active, draining (`draining: true`: no new job), or not
                in the policy (a record still names it), and how many jobs have a copy there
  cloud copies  only with --clouds, which also asks each cloud cluster: every Job federator
                keeps there, its on-prem Job, its state, and what becomes of it (the job's
                live copy; finished and kept for the grace period or until its outputs are
                home; collected by the next pass, and why); a cloud that does not answer is
                shown as "not read" with the reason, and the command still exits 0

--json prints the same as one JSON object; its keys are listed in docs/operations.md.
Exits 0; an on-prem cluster that cannot be reached or refuses the credentials exits 2,
naming the cluster and its server.

examples:
  federator status --config config/sandbox.yaml
  federator status --config config/sandbox.yaml --json | jq '.jobs[].placement'
  federator status --config config/sandbox.yaml --clouds
"""

LIVE_PHASES = ("placing", "placed", "requeued")  # a record in another phase is history


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "status",
        help="show what federator holds now: leader, bursted jobs, spend, blocked pools, clouds",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_policy_file_option(parser, "the policy file (YAML)")
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object instead of tables"
    )
    parser.add_argument(
        "--clouds",
        action="store_true",
        help="also ask each cloud cluster for the copies federator keeps there, and say what "
        "becomes of each (a finished copy waits out the grace period and its outputs); a cloud "
        "that does not answer is shown as such",
    )
    parser.set_defaults(run=run)


# ---- gathering (I/O) ------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    import asyncio
    import json
    import sys
    import time

    from federator import logs
    from federator.commands import status_view

    logs.configure(json=False, level="ERROR", stream=sys.stderr)
    fleet = asyncio.run(gather(args.config, now=time.time(), clouds=args.clouds))
    if args.json:
        print(json.dumps(status_view.as_json(fleet), indent=2))
    else:
        status_view.print_status(fleet, new_console())
    return 0


async def gather(config_path: Path, *, now: float, clouds: bool = False) -> FleetStatus:
    """Load the policy, connect to the on-prem cluster (as the daemon does), read it once;
    with `clouds`, each cloud cluster's copies too (`status_copies`)."""
    from federator import daemon, policy

    config = policy.load_policy(config_path)
    onprem = config.onprem_cluster.name
    cluster = await daemon.connect_cluster(config, onprem, None)
    try:
        return await read_fleet(config, cluster, now=now, clouds=clouds)
    finally:
        await cluster.close()


async def read_fleet(
    config: policy.FederatorConfig, cluster: Cluster, *, now: float, clouds: bool = False
) -> FleetStatus:
    """Every object status shows, read from `cluster`. A cluster that does not answer, or
    refuses who we are, is a `UserError` naming it and its server: a retry will not help."""
    from federator import errors
    from federator.commands.reachability import connection_source
    from federator.kube import errors as kube_errors

    server = getattr(cluster.api.configuration, "host", "") or "an unknown server"
    where = f"cluster {cluster.name} ({server})"
    check = f"check {connection_source(config, cluster.name)}"  # worded as plan's
    try:
        return await _read(config, cluster, now, clouds)
    except errors.CredentialsRefused as error:
        raise errors.UserError(f"{where} refused the request ({error.reason}); {check}") from None
    except errors.ClusterUnavailable as error:
        raise errors.UserError(f"{where} cannot be reached: {error.reason}; {check}") from None
    except kube_errors.Refused as error:
        if error.status != 403:
            raise
        refused = f"{error.status} {error.reason}".strip()
        raise errors.UserError(f"{where} refused the request ({refused}); {check}") from None


async def _read(
    config: policy.FederatorConfig, cluster: Cluster, now: float, clouds: bool
) -> FleetStatus:
    from federator import daemon
    from federator.commands import status_copies
    from federator.kube.pool_block_store import ConfigMapPoolBlockStore
    from federator.kube.spend_store import ConfigMapSpendStore

    namespace = config.state_namespace
    # The namespaces the daemon watches, as its observer is made (empty: every namespace).
    namespaces = frozenset(daemon.onprem_observer(config, cluster).namespaces)
    watched = await _watched_jobs(cluster, namespaces)
    jobs, kept = _with_records(watched)
    leader = await _lease(config, cluster)
    book = await ConfigMapSpendStore(
        cluster, namespace=namespace, name=f"{config.instance}-spend"
    ).load()
    blocks = await ConfigMapPoolBlockStore(
        cluster, namespace=namespace, name=f"{config.instance}-pool-blocks"
    ).load()
    fleet = fleet_status(config, jobs, book, blocks, leader, now=now, kept=kept)
    if not clouds:
        return fleet
    copies, unreachable = await status_copies.read_copies(config, cluster)
    return with_copies(config, fleet, watched, namespaces or None, copies, unreachable)


def with_copies(
    config: policy.FederatorConfig,
    fleet: FleetStatus,
    watched_jobs: Sequence[dict[str, Any]],
    namespaces: frozenset[str] | None,
    copies: Mapping[str, Sequence[CopyView]],
    unreachable: Mapping[str, str],
) -> FleetStatus:
    """The fleet with each cloud's copies (`--clouds`) and each cloud's count or why not;
    `namespaces` are the watched ones (None: every namespace)."""
    import dataclasses

    from federator.commands import status_copies
    from federator.kube import convert

    onprem = {
        str(convert.meta(job).get("uid")): (convert.key(job), convert.record_of(job))
        for job in watched_jobs
    }
    found = status_copies.cloud_copies(
        copies,
        onprem,
        watched=namespaces,
        now=fleet.now,
        grace_s=config.garbage_collection.grace_period.total_seconds(),
        outputs_checked=config.registry is not None,
    )
    configured = {cloud.name for cloud in config.cloud_clusters}
    not_asked = "not in the policy, so federator has no connection to read it"
    lines = tuple(
        dataclasses.replace(
            line,
            copies=len(copies[line.cluster]) if line.cluster in copies else None,
            unreachable=unreachable.get(line.cluster)
            or ("" if line.cluster in configured else not_asked),
        )
        for line in fleet.clouds
    )
    return dataclasses.replace(fleet, clouds=lines, copies=found)


async def _watched_jobs(cluster: Cluster, namespaces: frozenset[str]) -> list[dict[str, Any]]:
    """Every Job of the namespaces the daemon watches (`namespaces`; empty: every one)."""
    from federator.kube import convert

    listed = await cluster.request("GET", "/apis/batch/v1/jobs")
    return [
        job
        for job in listed.get("items") or []
        if not namespaces or convert.meta(job).get("namespace") in namespaces
    ]


def _with_records(
    watched_jobs: Sequence[dict[str, Any]],
) -> tuple[list[tuple[dict[str, Any], PlacementRecord]], list[dict[str, Any]]]:
    """The Jobs that carry a readable placement record, and those without one whose kept
    record (`federator.io/returned-record`) holds copies lost with their cluster: the budgets
    count those copies too (`charges.count_spend`)."""
    from federator.kube import convert

    found, kept = [], []
    for job in watched_jobs:
        record = convert.record_of(job)
        if record is not None:
            found.append((job, record))
        elif (returned := convert.returned_record_of(job)) is not None and returned.lost_copies:
            kept.append(job)
    return found, kept


async def _lease(config: policy.FederatorConfig, cluster: Cluster) -> Leader | None:
    from federator.kube import errors as kube_errors

    election = config.leader_election
    path = (
        f"/apis/coordination.k8s.io/v1/namespaces/{config.state_namespace}"
        f"/leases/{election.lease_name}"
    )
    try:
        lease = await cluster.request("GET", path)
    except kube_errors.NotFound:
        return None
    spec = lease.get("spec") or {}
    duration = spec.get("leaseDurationSeconds")
    return Leader(
        holder=str(spec.get("holderIdentity") or ""),
        renewed_at=_epoch(spec.get("renewTime") or spec.get("acquireTime")),
        lease_duration_s=float(duration) if duration is not None else None,
    )


def _epoch(stamp: object) -> float | None:
    """A Lease's MicroTime ("2026-11-30T22:50:01.123456Z") in epoch seconds."""
    if not isinstance(stamp, str) or not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return None


# ---- from objects to what is shown (pure) --------------------------------------------------


def fleet_status(
    config: policy.FederatorConfig,
    jobs: Sequence[tuple[dict[str, Any], PlacementRecord]],
    book: SpendBook,
    blocks: PoolBlocks,
    leader: Leader | None,
    *,
    now: float,
    kept: Sequence[dict[str, Any]] = (),
) -> FleetStatus:
    from federator.kube import convert

    spend = _spend(config, jobs, book, now, kept)  # one count for the budgets and the orphans
    bursted = [
        _bursted(convert.key(job), convert.annotations_of(job), record, now)
        for job, record in jobs
        if record.phase.value in LIVE_PHASES
    ]
    return FleetStatus(
        instance=config.instance,
        now=now,
        election_enabled=config.leader_election.enabled,
        leader=leader,
        jobs=tuple(sorted(bursted, key=lambda j: j.job)),
        budgets=tuple(_budget_lines(config, spend)),
        orphans=orphan_copies(spend.book, now),
        blocks=tuple(
            BlockedPool(c, p, b.until, b.cause.value, b.job)
            for (c, p), b in sorted(blocks.active(now).pools.items())
        ),
        clouds=cloud_lines(config, [record for _, record in jobs]),
        sources={
            "records": "annotation federator.io/record on the on-prem Jobs",
            "spend_book": f"ConfigMap {config.state_namespace}/{config.instance}-spend",
            "pool_blocks": f"ConfigMap {config.state_namespace}/{config.instance}-pool-blocks",
            "lease": f"Lease {config.state_namespace}/{config.leader_election.lease_name}",
        },
    )


def _bursted(key: str, notes: Mapping[str, str], record: PlacementRecord, now: float) -> BurstedJob:
    from federator.kube import convert

    priced = record.price_per_gpu_hour_usd > 0 or record.earlier_usd > 0 or bool(record.lost_copies)
    # A copy lost with its cluster counts until its end (running while not settled), as the
    # budgets count it.
    lost = sum(copy.cost_usd(now) for copy in record.lost_copies)
    return BurstedJob(
        job=key,
        cluster=record.cluster,
        pool=record.pool,
        attempt=record.attempt,
        preemptions=record.preemptions,
        phase=record.phase.value,
        remote_state=notes.get(convert.ANNOTATION_REMOTE_STATE, ""),
        placed_at=record.placed_at,
        not_before=record.not_before,
        expected_usd=record.expected_cost_usd if record.expected_cost_usd > 0 else None,
        accrued_usd=record.earlier_usd + record.attempt_cost_usd(now) + lost if priced else None,
    )


def budget_lines(
    config: policy.FederatorConfig,
    jobs: Sequence[tuple[dict[str, Any], PlacementRecord]],
    book: SpendBook,
    *,
    now: float,
    kept: Sequence[dict[str, Any]] = (),
) -> list[BudgetLine]:
    """Every period and cap the policy sets, as `budgets.caps_of` lists them, with what was
    spent and what is still committed (a line with no cap too, so the totals show). Each
    tenant's cap comes from `budgets.tenant_monthly_caps`, the rule the warnings use."""
    return _budget_lines(config, _spend(config, jobs, book, now, kept))


def _budget_lines(config: policy.FederatorConfig, spend: SpendCount) -> list[BudgetLine]:
    """`budget_lines` from a spend already counted (`_spend`)."""
    from federator.budgets import tenant_monthly_caps

    budgets = config.budgets
    committed = sum(spend.committed.values())
    lines = [
        BudgetLine("all", "today", spend.today_spent, committed, budgets.usd_per_day),
        BudgetLine("all", "this month", sum(spend.month_spent.values()), committed, None),
    ]
    if budgets.usd_per_hour is not None:
        rest = spend.hour_counted - spend.hour_spent
        lines.insert(
            0, BudgetLine("all", "last hour", spend.hour_spent, rest, budgets.usd_per_hour)
        )
    seen = [*spend.month_spent, *spend.committed]
    for tenant, cap in tenant_monthly_caps(config, seen).items():  # also those with no cap
        spent, still = spend.month_spent.get(tenant, 0.0), spend.committed.get(tenant, 0.0)
        lines.append(BudgetLine(f"tenant:{tenant}", "this month", spent, still, cap))
    return lines


def orphan_copies(book: SpendBook | None, now: float) -> tuple[OrphanCopy, ...]:
    """The lost copies of Jobs that are gone that the budgets count as running now: `book`
    carried as a pass carries it (`_spend`), so those it keeps unsettled and those of Jobs that
    went since the daemon's last pass."""
    copies = [kept.lost for kept in book.orphans.values()] if book is not None else []
    found = [
        OrphanCopy(c.cluster, c.namespace, c.name, c.since, c.usd_per_hour, c.cost_usd(now))
        for c in copies
        if c is not None
    ]
    return tuple(sorted(found, key=lambda o: (o.cluster, o.namespace, o.name)))


def _spend(
    config: policy.FederatorConfig,
    jobs: Sequence[tuple[dict[str, Any], PlacementRecord]],
    book: SpendBook,
    now: float,
    kept: Sequence[dict[str, Any]] = (),
) -> SpendCount:
    """Counted by the function `SpendLedger.spend` counts with (`charges.count_spend`), so the
    two cannot drift: each record's attempts since the hour, day or month began, each lost
    copy of a record or of a kept one (`kept`: Jobs back on-prem without a record), plus the
    spend book's jobs that are gone (carried as a pass would carry it, without writing it)."""
    from federator.federation.charges import JobRecord, count_spend
    from federator.kube import convert

    def tenant_of(job: dict[str, Any]) -> str:
        namespace = str(convert.meta(job).get("namespace"))
        owner = config.tenant_of_namespace(namespace)
        return owner.name if owner is not None else namespace  # as daemon.observers._tenant_of

    def uid_of(job: dict[str, Any]) -> str:
        return str(convert.meta(job).get("uid"))

    counted = [JobRecord(uid_of(job), tenant_of(job), record) for job, record in jobs]
    counted += [
        JobRecord(uid_of(job), tenant_of(job), None, convert.returned_record_of(job))
        for job in kept
    ]
    return count_spend(counted, book, now)


def cloud_lines(
    config: policy.FederatorConfig, records: Sequence[PlacementRecord]
) -> tuple[CloudLine, ...]:
    """Each configured cloud, then each cluster a live record names that the policy does not
    (its jobs are left alone: docs/operations.md, "Retiring a cloud cluster"), with the jobs
    whose copy is placed there. A retired cloud may go once its count is 0."""
    placed: dict[str, int] = {}
    for record in records:
        if record.phase.value in ("placing", "placed"):
            placed[record.cluster] = placed.get(record.cluster, 0) + 1
    lines = [
        CloudLine(c.name, "draining" if c.draining else "active", placed.pop(c.name, 0))
        for c in config.cloud_clusters
    ]
    lines += [CloudLine(name, "not in the policy", n) for name, n in sorted(placed.items())]
    return tuple(lines)
