"""`federator status` as an operator reads it, from on-prem objects served by a fake cluster.

The fake answers the paths status reads (the Jobs, the Lease, the spend book and pool block
ConfigMaps) with what the daemon writes there; figures are checked at a fixed `now`.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from rich.console import Console

from federator import cli, daemon, errors, policy
from federator.commands import status, status_view
from federator.commands.status_fleet import FleetStatus
from federator.federation.blocks import BlockCause, PoolBlock, PoolBlocks
from federator.federation.records import LostCopy, PlacementRecord
from federator.federation.spending import Contribution, SpendBook
from federator.kube import errors as kube_errors
from tests.support import configs

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC).timestamp()
SERVER = "https://127.0.0.1:16443"
JOBS = "/apis/batch/v1/jobs"
LEASE = "/apis/coordination.k8s.io/v1/namespaces/federator/leases/federator-sandbox"
BOOK = "/api/v1/namespaces/federator/configmaps/sandbox-spend"
BLOCKS = "/api/v1/namespaces/federator/configmaps/sandbox-pool-blocks"


class FakeCluster:
    """The on-prem cluster's answers by path; a path it does not hold is a 404."""

    def __init__(
        self, answers: dict[str, Any], *, down: bool = False, refused: bool = False
    ) -> None:
        self.name = "onprem"
        self.api = SimpleNamespace(configuration=SimpleNamespace(host=SERVER))
        self.answers = {JOBS: {"items": []}, **answers}
        self.down = down
        self.refused = refused
        self.closed = False

    async def request(self, method: str, path: str, **_: Any) -> dict[str, Any]:
        assert method == "GET", "status writes nothing"
        if self.down:
            raise errors.ClusterUnavailable("onprem", "ClientConnectorError: connection refused")
        if self.refused:
            raise errors.CredentialsRefused("onprem", "401 Unauthorized")
        if path not in self.answers:
            raise kube_errors.NotFound("onprem", 404, "NotFound")
        return dict(self.answers[path])

    async def close(self) -> None:
        self.closed = True


def job(name: str, namespace: str, record: PlacementRecord, remote_state: str = "") -> Any:
    notes = {"federator.io/record": record.to_json()}
    if remote_state:
        notes["federator.io/remote-state"] = remote_state
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{name}",
            "annotations": notes,
        }
    }


def placed(**changes: Any) -> PlacementRecord:
    """8 GPUs at $3/GPU-hour on cloud-a/a100-spot for 30 minutes: $12 accrued at NOW."""
    fields: dict[str, Any] = {
        "cluster": "cloud-a",
        "pool": "a100-spot",
        "attempt": 1,
        "phase": "placed",
        "placed_at": NOW - 1800,
        "gpus": 8,
        "price_per_gpu_hour_usd": 3.0,
        "expected_cost_usd": 20.0,
    }
    fields.update(changes)
    return PlacementRecord.from_json(json.dumps(fields))


def configmap(key: str, text: str) -> dict[str, Any]:
    return {"metadata": {"resourceVersion": "7"}, "data": {key: text}}


def lease(holder: str, renewed_s_ago: float) -> dict[str, Any]:
    renewed = datetime.fromtimestamp(NOW - renewed_s_ago, tz=UTC)
    return {
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": 15,
            "renewTime": renewed.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
    }


@pytest.fixture
def config(tmp_path: Path) -> policy.FederatorConfig:
    return policy.load_policy(configs.offline_sandbox_policy(tmp_path))


def fleet_of(config: policy.FederatorConfig, answers: dict[str, Any]) -> FleetStatus:
    import asyncio

    cluster: Any = FakeCluster(answers)
    return asyncio.run(status.read_fleet(config, cluster, now=NOW))


def shown(fleet: FleetStatus) -> str:
    out = io.StringIO()
    status_view.print_status(fleet, Console(file=out, width=100))
    return out.getvalue()


def rows(text: str) -> dict[str, list[str]]:
    """Table rows by their first cell."""
    found = {}
    for line in text.splitlines():
        if line.count("│") > 2:
            cells = [c.strip() for c in line.split("│")[1:-1]]
            found[cells[0]] = cells
    return found


def test_a_bursted_job_shows_where_it_runs_its_attempt_and_its_costs(
    config: policy.FederatorConfig,
) -> None:
    again = placed(attempt=2, preemptions=1, history=["cloud-b/h100-spot"])
    old = placed(expected_cost_usd=0.0, price_per_gpu_hour_usd=0.0)
    fleet = fleet_of(
        config,
        {
            JOBS: {
                "items": [
                    job("train", "team-a", again, remote_state="Running"),
                    job("old-record", "team-a", old),
                    job(
                        "lost", "team-b", placed(phase="requeued", not_before=NOW + 40), "Preempted"
                    ),
                    job("finished", "team-a", placed(phase="done", finished_at=NOW - 60)),
                ]
            }
        },
    )
    table = rows(shown(fleet))
    assert table["team-a/train"] == [
        "team-a/train",
        "cloud-a/a100-spot",
        "2",
        "1",
        "Running",
        "2026-11-30 11:30 UTC (30m ago)",
        "$20.00",
        "$12.00",
    ]
    assert table["team-a/old-record"][-2:] == ["-", "-"], "a record without figures says so"
    assert table["team-b/lost"][4] == "Preempted; requeued, decided again in 40s"
    assert "team-a/finished" not in table, "a done record is history, not a burst"


def test_spend_counts_the_records_and_the_gone_jobs_of_the_book_against_every_cap(
    config: policy.FederatorConfig,
) -> None:
    book = SpendBook(
        day="2026-11-30",
        month="2026-11",
        gone_today_usd=5.0,
        gone_month_usd={"team-b": 7.0},
        seen={"uid-vanished": Contribution(1.0, 2.0, "team-b")},  # gone since the last pass
    )
    fleet = fleet_of(
        config,
        {
            JOBS: {"items": [job("train", "team-a", placed())]},
            BOOK: configmap("book.json", book.to_json()),
        },
    )
    spend = {(s["scope"], s["period"]): s for s in status_view.as_json(fleet)["spend"]}
    assert spend["all", "last hour"] == {
        "scope": "all",
        "period": "last hour",
        "spent_usd": 12.0,
        "committed_usd": 12.0,  # a live placement counts its burn rate for the hour
        "cap_usd": 500.0,
        "used_fraction": 0.048,
    }
    assert (spend["all", "today"]["spent_usd"], spend["all", "today"]["committed_usd"]) == (
        18.0,  # 12 accrued by the live job, 5 + 1 by jobs that are gone
        8.0,  # the rest of the live job's $20
    )
    assert spend["all", "today"]["cap_usd"] == 5000.0
    assert spend["all", "this month"]["cap_usd"] is None
    assert spend["tenant:team-a", "this month"]["spent_usd"] == 12.0
    assert spend["tenant:team-a", "this month"]["used_fraction"] == 0.001  # $20 of $20,000
    assert spend["tenant:team-b", "this month"]["spent_usd"] == 9.0  # 7 in the book, 2 vanished
    table = rows(shown(fleet))
    assert table["tenant:team-b"] == [
        "tenant:team-b",
        "this month",
        "$9.00",
        "$0.00",
        "$10,000.00",
        "0.1%",
    ]
    assert table["all"] == ["all", "this month", "$21.00", "$8.00", "no cap", "-"]


def test_a_blocked_pool_shows_until_when_why_and_for_which_job(
    config: policy.FederatorConfig,
) -> None:
    blocks = PoolBlocks(
        {
            ("cloud-a", "a100-spot"): PoolBlock(NOW + 720, BlockCause.PREEMPTION, "team-a/train"),
            ("cloud-b", "h100-spot"): PoolBlock(NOW - 1, BlockCause.START_TIMEOUT, "team-b/x"),
        }
    )
    fleet = fleet_of(config, {BLOCKS: configmap("blocks.json", blocks.to_json())})
    table = rows(shown(fleet))
    assert table["cloud-a/a100-spot"] == [
        "cloud-a/a100-spot",
        "2026-11-30 12:12 UTC (in 12m)",
        "preemption",
        "team-a/train",
    ]
    assert "cloud-b/h100-spot" not in table, "a block that has ended is not shown"
    assert status_view.as_json(fleet)["blocked_pools"] == [
        {
            "placement": "cloud-a/a100-spot",
            "cluster": "cloud-a",
            "pool": "a100-spot",
            "until": "2026-11-30T12:12:00Z",
            "in_s": 720.0,
            "cause": "preemption",
            "job": "team-a/train",
        }
    ]


def test_empty_sections_say_so_in_a_line_and_no_lease_is_no_leader(
    config: policy.FederatorConfig,
) -> None:
    text = shown(fleet_of(config, {}))
    assert "leader: no leader (no Lease yet)" in text
    assert "bursted jobs: no job is bursted" in text
    assert "blocked pools: no pool is blocked" in text
    assert "lost copies of deleted Jobs: none counted" in text
    assert "┃ job" not in text, "never an empty table"
    assert "┃ pool" not in text


@pytest.mark.parametrize(
    ("holder", "ago_s", "line"),
    [
        ("sandbox-host-1", 3, "leader: sandbox-host-1 (renewed 3s ago)"),
        (
            "sandbox-host-1",
            40,
            "leader: no leader (the Lease of sandbox-host-1 expired: renewed 40s ago)",
        ),
        ("", 2, "leader: no leader (the Lease was released)"),
    ],
)
def test_the_leader_is_the_holder_of_a_lease_that_has_not_expired(
    config: policy.FederatorConfig, holder: str, ago_s: float, line: str
) -> None:
    fleet = fleet_of(config, {LEASE: lease(holder, ago_s)})
    assert status_view.leader_line(fleet) == line
    expected_holder = holder if line.startswith(f"leader: {holder} ") and holder else None
    assert status_view.as_json(fleet)["leader"]["holder"] == expected_holder


def test_json_is_one_object_with_stable_keys(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cluster = FakeCluster({JOBS: {"items": [job("train", "team-a", placed())]}})

    async def connect(*_: Any) -> FakeCluster:
        return cluster

    monkeypatch.setattr(daemon, "connect_cluster", connect)
    path = configs.offline_sandbox_policy(tmp_path)
    assert cli.main(["status", "--config", str(path), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert list(printed) == [
        "instance",
        "now",
        "leader",
        "jobs",
        "spend",
        "orphan_copies",
        "blocked_pools",
        "clouds",
        "sources",
    ]
    assert list(printed["jobs"][0]) == [
        "job",
        "placement",
        "cluster",
        "pool",
        "attempt",
        "preemptions",
        "phase",
        "remote_state",
        "placed_at",
        "not_before",
        "expected_usd",
        "accrued_usd",
    ]
    assert printed["jobs"][0]["placement"] == "cloud-a/a100-spot"
    clouds = {c["cluster"]: c for c in printed["clouds"]}
    assert clouds["cloud-a"] == {"cluster": "cloud-a", "state": "active", "jobs": 1}
    assert cluster.closed


@pytest.mark.parametrize(
    ("fault", "said"),
    [({"down": True}, "cannot be reached"), ({"refused": True}, "refused the request (401")],
)
def test_an_unreachable_cluster_is_one_line_naming_it_and_its_server_exit_2(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    fault: dict[str, bool],
    said: str,
) -> None:
    async def connect(*_: Any) -> FakeCluster:
        return FakeCluster({}, **fault)

    monkeypatch.setattr(daemon, "connect_cluster", connect)
    path = configs.offline_sandbox_policy(tmp_path)
    assert cli.main(["status", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"federator: error: cluster onprem ({SERVER}) {said}")
    assert (
        f"; check clusters.onprem.connection.kubeconfig: {tmp_path}/kubeconfig, context onprem"
        in err
    )
    assert "Traceback" not in err
    assert err.count("\n") == 1


def test_piped_output_keeps_long_job_names_whole(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = "a-rather-long-job-name-that-an-operator-greps-for-0042"
    cluster = FakeCluster({JOBS: {"items": [job(name, "team-b", placed(), "Running")]}})

    async def connect(*_: Any) -> FakeCluster:
        return cluster

    monkeypatch.setattr(daemon, "connect_cluster", connect)
    monkeypatch.delenv("COLUMNS", raising=False)
    assert cli.main(["status", "--config", str(configs.offline_sandbox_policy(tmp_path))]) == 0
    assert f"team-b/{name}" in capsys.readouterr().out


def test_a_copy_lost_with_its_cluster_counts_in_accrued_until_settled(
    config: policy.FederatorConfig,
) -> None:
    """As the budgets count it (f39383d): $24/h since 30 minutes ago is $12 more."""
    lost = {
        "cluster": "cloud-b",
        "namespace": "team-a",
        "name": "train-1",
        "attempt": 1,
        "usd_per_hour": 24.0,
        "since": NOW - 1800,
    }
    again = placed(attempt=2, earlier_usd=5.0, lost_copies=[lost])
    fleet = fleet_of(config, {JOBS: {"items": [job("train", "team-a", again)]}})
    assert rows(shown(fleet))["team-a/train"][-1] == "$29.00"  # 5 + 12 + 12


def test_a_lost_copy_of_a_deleted_job_is_listed_and_counted_as_running(
    config: policy.FederatorConfig,
) -> None:
    """The spend book keeps a copy lost with its cluster whose Job went before it was settled
    (an orphan): the spend counts it as running, and status says which copy that is."""
    lost = LostCopy("cloud-b", "team-a", "train-u9-1", 1, usd_per_hour=24.0, since=NOW - 1800)
    book = SpendBook(
        day="2026-11-30",
        month="2026-11",
        orphans={lost.key("u9"): Contribution(6.0, 6.0, "team-a", lost)},
    )
    fleet = fleet_of(config, {BOOK: configmap("book.json", book.to_json())})
    text = shown(fleet)
    assert "lost copies of deleted Jobs: 1" in text
    assert rows(text)["cloud-b/team-a/train-u9-1"] == [
        "cloud-b/team-a/train-u9-1",
        "2026-11-30 11:30 UTC (30m ago)",
        "$24.00/h",
        "$12.00",
    ]
    printed = status_view.as_json(fleet)
    assert printed["orphan_copies"] == [
        {
            "cluster": "cloud-b",
            "namespace": "team-a",
            "name": "train-u9-1",
            "since": "2026-11-30T11:30:00Z",
            "usd_per_hour": 24.0,
            "counted_usd": 12.0,
        }
    ]
    spend = {(s["scope"], s["period"]): s for s in printed["spend"]}
    assert spend["all", "today"]["spent_usd"] == 12.0, "counted as running: $24/h for 30 min"
    assert spend["all", "last hour"]["committed_usd"] == 12.0, "and its rate for the hour"
