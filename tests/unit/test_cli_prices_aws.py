"""`federator prices` with a policy priced by aws-spot-api and no AWS credentials (a newcomer
trying config/federator.example.yaml): the failure on one whole line, and what to do. The AWS
refresh is replaced; nothing is contacted."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from federator import cli
from federator.prices import live

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
FAILURE = "failed: NoCredentialsError: Unable to locate credentials"


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """config/federator.example.yaml with the files it names found from tmp_path."""
    text = (REPO / "config" / "federator.example.yaml").read_text()
    path = tmp_path / "policy.yaml"
    path.write_text(text.replace("../../shared/", f"{SHARED}/"))
    return path


def test_an_aws_failure_is_one_line_and_says_what_to_do(
    example: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def no_credentials(pricings: Any, now: float, force: bool = False) -> Any:
        return {"aws-use1/a100-spot": SimpleNamespace(failed={"us-east-1": FAILURE})}

    monkeypatch.setattr(live, "refresh_all", no_credentials)
    monkeypatch.delenv("COLUMNS", raising=False)
    assert cli.main(["prices", "--config", str(example)]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert f"aws-use1/a100-spot: AWS us-east-1: {FAILURE}" in lines
    assert any("--offline skips them" in line for line in lines), lines
