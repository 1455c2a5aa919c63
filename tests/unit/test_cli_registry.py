"""`federator registry list` as a newcomer meets it: an empty registry, a model that is not there,
and a listing piped to a file. The store calls are replaced; nothing is contacted."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from federator import cli
from federator.storage import registry
from tests.support.configs import offline_sandbox_policy


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return offline_sandbox_policy(tmp_path)


def holding(monkeypatch: pytest.MonkeyPatch, models: dict[str, list[str]]) -> None:
    """The registry holds these models and versions (each version one 4-byte file)."""

    def manifest(_: Any, name: str, ref: str) -> Any:
        return SimpleNamespace(files=["f"], size=4, created_at="2026-11-30T19:00:00Z")

    monkeypatch.setattr(registry.ModelRegistry, "models", lambda _: sorted(models))
    monkeypatch.setattr(registry.ModelRegistry, "versions", lambda _, m: models.get(m, []))
    monkeypatch.setattr(registry.ModelRegistry, "manifest", manifest)
    monkeypatch.setattr(registry.ModelRegistry, "aliases", lambda _, m: {})


def run(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> tuple[int, str, str]:
    code = cli.main(["registry", "-c", str(config), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_an_empty_registry_says_so_on_stderr(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    holding(monkeypatch, {})
    code, out, err = run(capsys, config, "list")
    assert (code, out) == (0, "")
    assert err == "no models in onprem:s3://onprem-models/registry/ yet\n"


def test_listing_models_prints_one_name_a_line(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    holding(monkeypatch, {"llama-ft": ["1"], "team/bert": ["1", "2"]})
    assert run(capsys, config, "list") == (0, "llama-ft\nteam/bert\n", "")


def test_a_model_that_is_not_there_is_a_mistake_naming_the_models_there(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    holding(monkeypatch, {"llama-ft": ["1"]})
    code, out, err = run(capsys, config, "list", "llama-fr")
    assert (code, out) == (2, "")
    assert err == (
        "federator: error: onprem:s3://onprem-models/registry/: no model 'llama-fr' "
        "(models: llama-ft)\n"
    )


def test_the_versions_of_a_model_keep_the_location_whole(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    holding(monkeypatch, {"llama-ft": ["1", "2"]})
    code, out, _ = run(capsys, config, "list", "llama-ft")
    assert code == 0
    assert out.splitlines()[0] == "llama-ft (onprem:s3://onprem-models/registry/)"
    assert sum(line.startswith("│ ") for line in out.splitlines()) == 2


def test_the_help_promises_only_what_list_prints() -> None:
    from federator.commands import registry as command

    assert "versions and aliases" not in command.DESCRIPTION
