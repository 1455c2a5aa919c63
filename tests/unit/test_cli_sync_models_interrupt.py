"""Ctrl-C during `federator sync models` stops the round the way a shutdown stops the daemon's,
and the report then says which versions were left; a second Ctrl-C quits at once.

Before, nothing in the command set the registries' stop, so the first Ctrl-C raised
KeyboardInterrupt out of the round ("federator: interrupted", exit 130) and no report said
what had been brought home and what had not. The stores are in memory; nothing is contacted."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from federator import cli
from federator.storage import stores
from federator.storage.endpoints import Location
from federator.storage.registry import ModelRegistry
from federator.syncing import manifests
from federator.syncing.manifests import Manifest
from tests.support.configs import offline_sandbox_policy
from tests.unit.storage.test_registry_retries import CLOUD, ONPREM, WHOLE, FaultyS3, blob


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return offline_sandbox_policy(tmp_path)


@pytest.fixture(autouse=True)
def ctrl_c_interrupts() -> Iterator[None]:
    """Ctrl-C as at a terminal, whatever the test run started with: a run started in the
    background (CI's) ignores SIGINT, and there the command rightly leaves it ignored."""
    started = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, started)


class CtrlCAtManifest(FaultyS3):
    """An on-prem store during whose first `presses` manifest writes the user presses Ctrl-C."""

    def __init__(self, presses: int) -> None:
        super().__init__()
        self.presses = presses

    def put_object(self, *, Key: str, Body: bytes, **kw: Any) -> Any:
        if "/versions/" in Key and self.presses:
            self.presses -= 1
            signal.raise_signal(signal.SIGINT)
        return super().put_object(Key=Key, Body=Body, **kw)


def staged_bert(versions: int) -> FaultyS3:
    staging = FaultyS3()
    for number in range(1, versions + 1):
        data, entry = blob(WHOLE, seed=number)
        staging.objects["registry/" + manifests.blob_key(entry.digest)] = (data, "e")
        manifest = Manifest("bert", str(number), (entry,), "2026-11-30", {})
        key = "registry/" + manifests.manifest_key("bert", str(number))
        staging.objects[key] = (manifests.encode(manifest), "m")
    return staging


def served(monkeypatch: pytest.MonkeyPatch, staging: FaultyS3, onprem: FaultyS3) -> None:
    """The command's Stores hand out registries on these buckets, sharing the Stores' stop."""

    def on(client: FaultyS3, endpoint: Any, store: stores.Stores) -> ModelRegistry:
        location = Location(endpoint, "models", "registry/")
        return ModelRegistry(location, client, stopping=store._stopping)  # type: ignore[arg-type]

    monkeypatch.setattr(stores.Stores, "staging", lambda self, _: on(staging, CLOUD, self))
    monkeypatch.setattr(stores.Stores, "registry", lambda self: on(onprem, ONPREM, self))


def test_the_first_ctrl_c_stops_the_round_and_the_report_names_what_was_left(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    onprem = CtrlCAtManifest(presses=1)
    served(monkeypatch, staged_bert(3), onprem)
    code = cli.main(["sync", "-c", str(config), "models", "--from", "cloud-a"])
    lines = capsys.readouterr().err.splitlines()
    assert code == 1
    assert "copied bert@1" in lines, "the version in flight is finished: its manifest was sent"
    assert "left bert@2: not reached before the stop" in lines
    assert "left bert@3: not reached before the stop" in lines
    assert lines[-1].startswith("incomplete: 2 version(s) not brought home (0 failed, 2 left")
    home = [key for key in onprem.objects if "/versions/" in key]
    assert home == ["registry/" + manifests.manifest_key("bert", "1")]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler, "handler put back"


def test_a_second_ctrl_c_quits_at_once(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    served(monkeypatch, staged_bert(3), FaultyS3())
    monkeypatch.setattr(ModelRegistry, "_all_versions", _listing_then_ctrl_c, raising=True)
    code = cli.main(["sync", "-c", str(config), "models", "--from", "cloud-a"])
    assert code == 130
    assert capsys.readouterr().err.splitlines()[-1] == "federator: interrupted"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


_real_all_versions = ModelRegistry._all_versions


def _listing_then_ctrl_c(self: ModelRegistry) -> list[tuple[str, str]]:
    """The on-prem listing meets two Ctrl-C: the first stops, the second interrupts."""
    found = _real_all_versions(self)
    if self.location.endpoint is ONPREM:
        signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGINT)
    return found


def test_a_run_started_with_ctrl_c_ignored_leaves_it_ignored(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under nohup or as a script's background job SIGINT is ignored: a Ctrl-C sent to the
    group must not stop the round, and the command must not take the signal over."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    onprem = CtrlCAtManifest(presses=1)
    served(monkeypatch, staged_bert(3), onprem)
    code = cli.main(["sync", "-c", str(config), "models", "--from", "cloud-a"])
    assert code == 0, capsys.readouterr().err
    assert len([key for key in onprem.objects if "/versions/" in key]) == 3
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
