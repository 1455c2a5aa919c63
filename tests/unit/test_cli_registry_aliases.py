"""`federator registry list MODEL` shows, for each version, the aliases that point at it.

Before, the table had version, files, size and created only: the registry's aliases (`latest`,
`prod`, ...) were invisible unless one guessed a name for `registry show MODEL @ALIAS`. The
registry is an in-memory S3 bucket; nothing is contacted."""

from __future__ import annotations

from pathlib import Path

import pytest

from federator import cli
from federator.storage import stores
from federator.syncing import manifests
from tests.support.configs import offline_sandbox_policy
from tests.unit.storage.test_registry_review import ONPREM, MemoryS3, published, registry


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return offline_sandbox_policy(tmp_path)


@pytest.fixture
def bucket(monkeypatch: pytest.MonkeyPatch) -> MemoryS3:
    client = MemoryS3()
    monkeypatch.setattr(stores.Stores, "registry", lambda _: registry(ONPREM, client))
    return client


def listed(capsys: pytest.CaptureFixture[str], config: Path, model: str) -> tuple[int, list[str]]:
    code = cli.main(["registry", "-c", str(config), "list", model])
    return code, capsys.readouterr().out.splitlines()


def rows(lines: list[str]) -> list[list[str]]:
    """The table's header and body rows, cell by cell (rich draws the header's bars heavy)."""
    bars = [line.replace("┃", "│") for line in lines]
    return [[cell.strip() for cell in line.split("│")[1:-1]] for line in bars if "│" in line]


def test_each_version_shows_the_aliases_that_point_at_it(
    config: Path,
    bucket: MemoryS3,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    published(bucket, "llama-ft", "1", "2", "3")
    models = registry(ONPREM, bucket)
    models.move_alias("llama-ft", "prod", "2", expected=None)
    models.move_alias("llama-ft", "latest", "3", expected=None)
    models.move_alias("llama-ft", "candidate", "3", expected=None)
    code, lines = listed(capsys, config, "llama-ft")
    assert code == 0
    header, *body = rows(lines)
    assert header[:2] == ["version", "aliases"]
    assert [row[:2] for row in body] == [["1", ""], ["2", "prod"], ["3", "candidate, latest"]]


def test_aliases_of_another_model_or_of_a_model_named_below_it_are_not_shown(
    config: Path,
    bucket: MemoryS3,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`team/aliases/x` is a valid model name whose keys sit under `team`'s alias prefix."""
    monkeypatch.setenv("COLUMNS", "200")
    published(bucket, "team", "1")
    published(bucket, "team/aliases/x", "1")
    published(bucket, "other", "1")
    models = registry(ONPREM, bucket)
    models.move_alias("team/aliases/x", "prod", "1", expected=None)
    models.move_alias("other", "prod", "1", expected=None)
    assert models.aliases("team") == {}
    assert models.aliases("team/aliases/x") == {"prod": "1"}
    code, lines = listed(capsys, config, "team")
    assert code == 0
    assert [row[:2] for row in rows(lines)[1:]] == [["1", ""]]


def test_an_alias_naming_no_version_is_said_below_the_table(
    config: Path,
    bucket: MemoryS3,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    published(bucket, "llama-ft", "1")
    key = "registry/" + manifests.alias_key("llama-ft", "prod")
    bucket.put_object(Key=key, Body=b'{"version": "7"}')  # written by hand, not by move_alias
    code, lines = listed(capsys, config, "llama-ft")
    assert code == 0
    assert lines[-1] == "alias prod -> 7: no such version"
