"""The daemon's data gate over the real `Replicator`: whether a job may start, and, while its
replica's last copy or listing failed, why (the federation tells the job).

Before, the gate answered only a bool: the replicator's failure message never reached the
federation, so a job held for a copy that kept failing was told nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from federator.daemon import data_gate, policy_file
from federator.syncing.replication import Replicator
from tests.support.configs import sandbox_config
from tests.unit.storage.test_replication import FakeEngine


def gate_over(
    engine: FakeEngine, tmp_path: Path, **dataset: Any
) -> tuple[data_gate.DataGate, Replicator]:
    """The gate as the daemon builds it, over one engine for every replica; `dataset` edits
    wikitext's entry in the sandbox policy."""
    raw = sandbox_config()
    wikitext = next(d for d in raw["datasets"] if d["name"] == "wikitext")
    wikitext.update(dataset)
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(raw))
    replicator = Replicator(lambda *_: engine, clock=lambda: 1000.0)
    holder = policy_file.PolicyHolder(path)
    return data_gate.DataGate(replicator, None, holder), replicator  # type: ignore[arg-type]


def failing() -> FakeEngine:
    engine = FakeEngine(fail=True)
    engine.release.set()
    return engine


async def test_a_replica_whose_copy_failed_holds_the_job_and_says_why(tmp_path: Path) -> None:
    gate, replicator = gate_over(failing(), tmp_path)
    await replicator.sync_now("wikitext", "cloud-a")  # the copy fails
    answer = await gate.ensure_replicated("wikitext", "cloud-a")
    assert not answer.may_start
    assert "1 object(s) failed, first b: boom" in answer.problem
    assert "(1 failure in a row; next try after 00:17:" in answer.problem  # 1000 s + backoff


async def test_a_job_that_need_not_wait_may_start_beside_a_failed_copy_and_is_told(
    tmp_path: Path,
) -> None:
    gate, replicator = gate_over(failing(), tmp_path, sync_before_start=False)
    await replicator.sync_now("wikitext", "cloud-a")
    answer = await gate.ensure_replicated("wikitext", "cloud-a")
    assert answer.may_start
    assert "boom" in answer.problem


async def test_a_copy_running_or_complete_has_no_problem(tmp_path: Path) -> None:
    engine = FakeEngine()  # its run waits for `release`
    gate, replicator = gate_over(engine, tmp_path)
    running = await gate.ensure_replicated("wikitext", "cloud-a")
    assert (running.may_start, running.problem) == (False, "")
    engine.release.set()
    await replicator.sync_now("wikitext", "cloud-a")
    assert (await gate.ensure_replicated("wikitext", "cloud-a")).may_start


class _Registries:
    """Stand-ins for the stores' staging and on-prem registries (sync_back is replaced)."""

    def staging(self, cluster: str) -> str:
        return f"staging:{cluster}"

    def registry(self) -> str:
        return "on-prem"


def _gate_with_sync_back(tmp_path: Path, report: Any, monkeypatch: Any) -> data_gate.DataGate:
    from federator.storage import registry as registry_edge

    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(sandbox_config()))
    monkeypatch.setattr(registry_edge, "sync_back", lambda source, target, only: report)
    stores: Any = _Registries()
    return data_gate.DataGate(
        Replicator(lambda *_: FakeEngine()), stores, policy_file.PolicyHolder(path)
    )


def _sync_back_report(*, failures: Any = (), left: int = 0) -> Any:
    from federator.storage.registry import SyncBackReport

    return SyncBackReport(("job-ckpt@1",), 0, 1, 0, 10, tuple(failures), left_for_next_round=left)


async def test_outputs_left_for_the_next_round_by_a_stop_are_not_synced_yet(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """A stop cut sync back short after v1 with v2 still in the cloud: no failure, but the
    cloud copy (and its staging area) must not be cleaned up as if everything were home."""
    gate = _gate_with_sync_back(tmp_path, _sync_back_report(left=1), monkeypatch)
    assert not await gate.outputs_synced("team-a/train", "cloud-a")


async def test_outputs_are_synced_when_every_version_came_home(
    tmp_path: Path, monkeypatch: Any
) -> None:
    gate = _gate_with_sync_back(tmp_path, _sync_back_report(), monkeypatch)
    assert await gate.outputs_synced("team-a/train", "cloud-a")
    failed = _gate_with_sync_back(
        tmp_path, _sync_back_report(failures=[("job-ckpt@2", "boom")]), monkeypatch
    )
    assert not await failed.outputs_synced("team-a/train", "cloud-a")
