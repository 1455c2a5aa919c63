"""`federator sandbox up|down|status` print progress, errors (with a server's log tail, full of
brackets), paths and component names as they are. rich reads `[...]` as markup: before,
`shards/[train]/p0` lost its `[train]` and `[/x]` raised MarkupError, a traceback instead of
the error. The sandbox is replaced: nothing is built, started or stopped."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from federator import cli, sandbox
from federator.sandbox import ComponentFailed, binaries

FROM_OUTSIDE = ["shards/[train]/p0", "a: [/x]"]


@pytest.fixture(autouse=True)
def unbroken_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")


def err_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.splitlines()


@pytest.mark.parametrize("value", FROM_OUTSIDE)
def test_up_prints_progress_and_paths_whole(
    value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / value
    root.mkdir(parents=True)
    (root / "kubeconfig").write_text("")

    def up(*, parts: Any, report: Any, build: bool) -> Any:
        report(f"onprem: released Workload {value}")
        return SimpleNamespace(kubeconfig=root / "kubeconfig", root=root)

    monkeypatch.setattr(binaries, "missing", lambda _: [])
    monkeypatch.setattr(sandbox, "up", up)
    assert cli.main(["sandbox", "up"]) == 0
    lines = err_lines(capsys)
    assert lines[0].endswith(f"s onprem: released Workload {value}")
    assert f"kubeconfig: {root / 'kubeconfig'} (contexts onprem, cloud-a, cloud-b)" in lines
    assert f"s3 stores:  {root / 's3.json'}" in lines


@pytest.mark.parametrize("value", FROM_OUTSIDE)
def test_up_prints_a_components_failure_whole(
    value: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def up(**_: Any) -> Any:
        raise ComponentFailed("onprem-etcd", f"exited: {value}", None)

    monkeypatch.setattr(binaries, "missing", lambda _: [])
    monkeypatch.setattr(sandbox, "up", up)
    assert cli.main(["sandbox", "up"]) == 1
    assert f"sandbox up failed: sandbox: onprem-etcd exited: {value}" in err_lines(capsys)


class FakeSandbox:
    """A sandbox of one component named `value`: down reports on it (and, if `listening`, finds
    its port still bound), status shows it."""

    value = ""
    listening = False

    def __init__(self, report: Any = None) -> None:
        self.report = report

    def down(self) -> Any:
        self.report(f"stopped {self.value} (0.1 s)")
        leftover = {self.value: 18310} if self.listening else {}
        return SimpleNamespace(components=(self.value,), leftover_ports=leftover)

    def status(self) -> list[Any]:
        row = SimpleNamespace(
            key=self.value, pid=None, running=False, rss_bytes=0, ports=(18310,), listening=()
        )
        return [row]


@pytest.mark.parametrize("value", FROM_OUTSIDE)
def test_down_and_status_print_component_names_whole(
    value: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(FakeSandbox, "value", value)
    monkeypatch.setattr(sandbox, "Sandbox", FakeSandbox)
    assert cli.main(["sandbox", "down"]) == 0
    lines = err_lines(capsys)
    assert f"stopped {value} (0.1 s)" in lines
    assert f"stopped 1 process(es): {value}" in lines
    assert cli.main(["sandbox", "status"]) == 3
    out = capsys.readouterr().out
    assert any(line.startswith(f"│ {value} ") for line in out.splitlines())


@pytest.mark.parametrize("value", FROM_OUTSIDE)
def test_down_names_a_component_still_listening_whole(
    value: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(FakeSandbox, "value", value)
    monkeypatch.setattr(FakeSandbox, "listening", True)
    monkeypatch.setattr(sandbox, "Sandbox", FakeSandbox)
    assert cli.main(["sandbox", "down"]) == 1
    assert f"still listening: {value} (18310)" in err_lines(capsys)
