"""How `federator status` shows a `FleetStatus`: rich tables for people, one JSON object for tools.

Only showing lives here (wording, units, rounding, the JSON keys docs/operations.md lists);
what is shown was read and counted by `status` before, so every figure here is a plain value
and the view can be checked without a cluster.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from federator import jsonsafe

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from federator.commands.status_fleet import BurstedJob, CloudCopy, CloudLine, FleetStatus


# ---- tables ---------------------------------------------------------------------------------


def print_status(fleet: FleetStatus, console: Console) -> None:
    from federator.commands.output import wide_enough

    # The instance and the Lease's holder are names from the cluster: printed as they are.
    console.print(f"federator status: instance {fleet.instance}", markup=False, highlight=False)
    console.print(leader_line(fleet), markup=False, highlight=False)
    sections: list[tuple[str, Table | None, str]] = [
        (f"bursted jobs: {len(fleet.jobs)}", jobs_table(fleet), "no job is bursted"),
        ("spend (USD)", budgets_table(fleet), "no budget to show"),
        (
            f"lost copies of deleted Jobs: {len(fleet.orphans)}",
            orphans_table(fleet),
            "none counted",
        ),
        (f"blocked pools: {len(fleet.blocks)}", blocks_table(fleet), "no pool is blocked"),
        (f"clouds: {len(fleet.clouds)}", clouds_table(fleet), "no cloud cluster"),
    ]
    if fleet.copies is not None:  # asked with --clouds
        count = len(fleet.copies)
        answered = all(not cloud.unreachable for cloud in fleet.clouds)
        empty = "no copy on any cloud" if answered else "no copy on the clouds that answered"
        sections.append((f"cloud copies: {count}", copies_table(fleet), empty))
    for title, table, empty in sections:
        console.print()
        if table is None:
            console.print(f"{title.split(':')[0]}: {empty}", highlight=False)
            continue
        # The title as its own line, not the table's: rich pads a table title with spaces to the
        # table's width, which left trailing blanks on every section line of piped output.
        wide = wide_enough(console, table)
        wide.print(title, highlight=False)
        wide.print(table)


def leader_line(fleet: FleetStatus) -> str:
    if not fleet.election_enabled:
        return "leader: election off (leader_election.enabled is false: one replica acts)"
    leader = fleet.leader
    if leader is None:
        return "leader: no leader (no Lease yet)"
    ago = (
        "never renewed"
        if leader.renewed_at is None
        else f"renewed {_ago(leader.renewed_at, fleet.now)}"
    )
    if leader.holds(fleet.now):
        return f"leader: {leader.holder} ({ago})"
    if leader.holder:
        return f"leader: no leader (the Lease of {leader.holder} expired: {ago})"
    return "leader: no leader (the Lease was released)"


JOB_COLUMNS = (
    "job",
    "placement",
    "attempt",
    "preemptions",
    "remote state",
    "placed",
    "expected",
    "accrued",
)


def jobs_table(fleet: FleetStatus) -> Table | None:
    from rich.text import Text

    if not fleet.jobs:
        return None
    table = _table(*JOB_COLUMNS)
    for job in fleet.jobs:
        table.add_row(  # names and the mirrored state come from the clusters: as they are
            Text(job.job),
            Text(f"{job.cluster}/{job.pool}"),
            str(job.attempt),
            str(job.preemptions),
            Text(_state(job, fleet.now)),
            f"{_utc(job.placed_at)} ({_ago(job.placed_at, fleet.now)})",
            _usd(job.expected_usd),
            _usd(job.accrued_usd),
        )
    return table


def budgets_table(fleet: FleetStatus) -> Table | None:
    from rich.text import Text

    if not fleet.budgets:
        return None
    table = _table("scope", "period", "spent", "committed", "cap", "used")
    for line in fleet.budgets:
        table.add_row(
            Text(line.scope),  # a tenant's name
            line.period,
            _usd(line.spent_usd),
            _usd(line.committed_usd),
            "no cap" if line.cap_usd is None else _usd(line.cap_usd),
            _percent(line.used_fraction),
        )
    return table


def orphans_table(fleet: FleetStatus) -> Table | None:
    """Copies lost with their cluster (a partition) whose Job was deleted before the cluster
    showed them stopped: counted in the spend above as running, until it does."""
    from rich.text import Text

    return _filled(
        ("copy", "lost since", "rate", "counted"),
        [
            (
                Text(f"{orphan.cluster}/{orphan.namespace}/{orphan.name}"),
                f"{_utc(orphan.since)} ({_ago(orphan.since, fleet.now)})",
                f"{_usd(orphan.usd_per_hour)}/h",
                _usd(orphan.counted_usd),
            )
            for orphan in fleet.orphans
        ],
    )


def blocks_table(fleet: FleetStatus) -> Table | None:
    from rich.text import Text

    return _filled(
        ("pool", "until", "cause", "job"),
        [
            (
                Text(f"{block.cluster}/{block.pool}"),
                f"{_utc(block.until)} (in {_left(block.until - fleet.now)})",
                Text(block.cause),
                Text(block.job),
            )
            for block in fleet.blocks
        ],
    )


def clouds_table(fleet: FleetStatus) -> Table | None:
    from rich.text import Text

    if not fleet.clouds:
        return None
    asked = fleet.copies is not None
    table = _table("cloud", "state", "placed jobs", *(("copies there",) if asked else ()))
    for cloud in fleet.clouds:
        row: list[str | Text] = [Text(cloud.cluster), cloud.state, str(cloud.jobs)]
        if asked:
            seen = str(cloud.copies) if cloud.copies is not None else "not read"
            row.append(Text(f"{seen}: {cloud.unreachable}" if cloud.unreachable else seen))
        table.add_row(*row)
    return table


def copies_table(fleet: FleetStatus) -> Table | None:
    """The copies each cloud holds (`--clouds`), each with its on-prem Job and its fate."""
    from rich.text import Text

    if not fleet.copies:
        return None
    table = _table("cloud", "copy", "on-prem job", "state", "what becomes of it")
    for copy in fleet.copies:
        table.add_row(
            Text(copy.cluster),
            Text(f"{copy.namespace}/{copy.name}"),
            Text(copy.job or "(none)"),
            copy.state,
            Text(copy.fate),
        )
    return table


def _state(job: BurstedJob, now: float) -> str:
    if job.phase == "requeued":  # the remote state is the loss ("Preempted"), if mirrored
        wait = job.not_before - now
        when = f"decided again in {_left(wait)}" if wait > 0 else "waits for the next pass"
        return f"{job.remote_state or 'copy lost'}; requeued, {when}"
    return job.remote_state or f"{job.phase} (no state mirrored yet)"


def _table(*columns: str) -> Table:
    """A table whose cells fold rather than cut: names from the clusters are shown whole."""
    from rich.table import Table

    table = Table()
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _filled(columns: tuple[str, ...], rows: list[tuple[Text | str, ...]]) -> Table | None:
    """`_table` with these rows, or None for no row: an empty section is one line."""
    if not rows:
        return None
    table = _table(*columns)
    for row in rows:
        table.add_row(*row)
    return table


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def _span(seconds: float) -> str:
    from federator.core import reasons

    return reasons.duration(max(0.0, seconds))


def _ago(epoch: float, now: float) -> str:
    """A past time, rounded down: 9m59s ago is "9m ago", since 10 minutes have not passed."""
    return f"{_span(now - epoch)} ago"


# Epoch floats near 2e9 carry ~1e-7 s of error; a millisecond past a whole unit is that error,
# not time left, and must not add a unit.
_CLOCK_NOISE_S = 0.001


def _left(seconds: float) -> str:
    """A time still to come, rounded UP to the unit shown: a pool blocked for 10 minutes a
    second ago reads "10m", not "9m", so the table never promises it back before it is."""
    if not math.isfinite(seconds):
        return _span(seconds)  # "forever": a record may say so (an unbounded `not_before`)
    left = max(0.0, seconds - _CLOCK_NOISE_S)
    unit = _unit_shown(left)
    return _span(math.ceil(left / unit) * unit)


def _unit_shown(seconds: float) -> float:
    """The smallest unit `reasons.duration` shows for a span this long (45s, 12m, 6h10m, 3d4h)."""
    if seconds < 60:
        return 1.0
    return 60.0 if seconds < 86400 else 3600.0


def _usd(value: float | None) -> str:
    return "-" if value is None else f"${value:,.2f}"


def _percent(fraction: float | None) -> str:
    if fraction is None:
        return "-"
    if not math.isfinite(fraction):
        return "cap is $0"
    return f"{fraction:.1%}" if fraction < 0.1 else f"{fraction:.0%}"  # 0.5%, not 0%


# ---- JSON -----------------------------------------------------------------------------------


def as_json(fleet: FleetStatus) -> dict[str, Any]:
    """The object `--json` prints; its keys are documented in docs/operations.md and stay."""
    leader = fleet.leader
    return {
        "instance": fleet.instance,
        "now": _iso(fleet.now),
        "leader": {
            "election_enabled": fleet.election_enabled,
            "holder": leader.holder if leader is not None and leader.holds(fleet.now) else None,
            "lease_holder": leader.holder if leader is not None else None,
            "renewed_at": _iso(leader.renewed_at) if leader is not None else None,
            "renewed_s_ago": (
                round(fleet.now - leader.renewed_at, 1)
                if leader is not None and leader.renewed_at is not None
                else None
            ),
        },
        "jobs": [
            {
                "job": j.job,
                "placement": f"{j.cluster}/{j.pool}",
                "cluster": j.cluster,
                "pool": j.pool,
                "attempt": j.attempt,
                "preemptions": j.preemptions,
                "phase": j.phase,
                "remote_state": j.remote_state or None,
                "placed_at": _iso(j.placed_at),
                "not_before": _iso(j.not_before) if j.phase == "requeued" else None,
                "expected_usd": _rounded(j.expected_usd),
                "accrued_usd": _rounded(j.accrued_usd),
            }
            for j in fleet.jobs
        ],
        "spend": [
            {
                "scope": b.scope,
                "period": b.period,
                "spent_usd": _rounded(b.spent_usd),
                "committed_usd": _rounded(b.committed_usd),
                "cap_usd": b.cap_usd,
                # a $0 cap with spend is used infinitely: null, as budgets.Cap says
                "used_fraction": jsonsafe.finite(b.used_fraction, 4),
            }
            for b in fleet.budgets
        ],
        "orphan_copies": [
            {
                "cluster": o.cluster,
                "namespace": o.namespace,
                "name": o.name,
                "since": _iso(o.since),
                "usd_per_hour": _rounded(o.usd_per_hour),
                "counted_usd": _rounded(o.counted_usd),
            }
            for o in fleet.orphans
        ],
        "blocked_pools": [
            {
                "placement": f"{b.cluster}/{b.pool}",
                "cluster": b.cluster,
                "pool": b.pool,
                "until": _iso(b.until),
                "in_s": round(max(0.0, b.until - fleet.now), 1),
                "cause": b.cause,
                "job": b.job,
            }
            for b in fleet.blocks
        ],
        "clouds": [_cloud_json(c, asked=fleet.copies is not None) for c in fleet.clouds],
        **({} if fleet.copies is None else {"copies": [_copy_json(c) for c in fleet.copies]}),
        "sources": dict(fleet.sources),
    }


def _copy_json(copy: CloudCopy) -> dict[str, Any]:
    return {
        "cluster": copy.cluster,
        "namespace": copy.namespace,
        "name": copy.name,
        "job": copy.job or None,
        "state": copy.state,
        "fate": copy.fate,
    }


def _cloud_json(cloud: CloudLine, *, asked: bool) -> dict[str, Any]:
    line: dict[str, Any] = {"cluster": cloud.cluster, "state": cloud.state, "jobs": cloud.jobs}
    if asked:  # --clouds: the copies read there, or why none could be
        line["copies"] = cloud.copies
        line["unreachable"] = cloud.unreachable or None
    return line


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return (
        datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
