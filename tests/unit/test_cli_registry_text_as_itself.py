"""`federator registry list|show|verify` print what the store holds as it is: model names,
aliases, creation times, metadata, file paths and problems. rich reads `[...]` as markup:
before, `shards/[train]/p0` lost its `[train]`, and `[/x]` raised MarkupError, a traceback.
The store calls are replaced; nothing is contacted."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from federator import cli
from federator.storage import registry
from tests.support.configs import offline_sandbox_policy

FROM_OUTSIDE = ["shards/[train]/p0", "a: [/x]"]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return offline_sandbox_policy(tmp_path)


@pytest.fixture(autouse=True)
def unbroken_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "300")  # cells whole, one table row a line


def holding(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """Model `llama-ft`, version 1 (created `value`, one file at path `value`, metadata
    `split: value`), an alias `value` to it and one to a version that is not there; another
    model is named `value`."""
    manifest = SimpleNamespace(
        name="llama-ft",
        version="1",
        files=[SimpleNamespace(path=value, size=4, digest="sha256:" + "0" * 64)],
        size=4,
        created_at=value,
        metadata={"split": value},
    )
    found = SimpleNamespace(name="llama-ft", version="1", files=1, bytes_checked=4, ok=False)
    found.problems = [f"{value}: size 3, expected 4"]
    patches: dict[str, Any] = {
        "models": lambda _: ["llama-ft", value],
        "versions": lambda _, m: ["1"],
        "manifest": lambda *_: manifest,
        "aliases": lambda _, m: {value: "1", "old": value},
        "verify": lambda *_: found,
    }
    for name, answer in patches.items():
        monkeypatch.setattr(registry.ModelRegistry, name, answer)


def run(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> tuple[int, str]:
    code = cli.main(["registry", "-c", str(config), *args])
    return code, capsys.readouterr().out


@pytest.mark.parametrize("value", FROM_OUTSIDE)
def test_list_prints_names_aliases_and_times_whole(
    value: str, config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    holding(monkeypatch, value)
    assert run(capsys, config, "list") == (0, f"llama-ft\n{value}\n")
    code, out = run(capsys, config, "list", "llama-ft")
    assert code == 0
    row = next(line for line in out.splitlines() if line.startswith("│ 1 "))
    assert f"│ {value} " in row  # the alias
    assert row.rstrip("│ ").endswith(value)  # created
    assert f"alias old -> {value}: no such version" in out.splitlines()


@pytest.mark.parametrize("value", FROM_OUTSIDE)
def test_show_prints_creation_metadata_and_paths_whole(
    value: str, config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    holding(monkeypatch, value)
    code, out = run(capsys, config, "show", "llama-ft", "1")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"llama-ft version 1, {value}"
    assert f"  split: {value}" in lines
    assert any(line.startswith(f"│ {value} ") for line in lines)


@pytest.mark.parametrize("value", FROM_OUTSIDE)
def test_verify_prints_problems_whole(
    value: str, config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    holding(monkeypatch, value)
    code, out = run(capsys, config, "verify", "llama-ft", "1")
    assert code == 1
    assert f"bad {value}: size 3, expected 4" in out.splitlines()
