"""`federator prices` as a user runs it offline: the table piped whole, --aws-endpoint checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from federator import cli

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """config/sandbox.yaml with its catalog and interruption files found from tmp_path."""
    text = (REPO / "config" / "sandbox.yaml").read_text().replace("../../shared/", f"{SHARED}/")
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


def test_piped_output_is_not_cut_to_80_columns(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("LINES", raising=False)
    assert cli.main(["prices", "--config", str(config), "--offline"]) == 0
    out = capsys.readouterr().out
    assert "…" not in out
    for whole in ("cloud-a/a100-ondemand", "catalog:aws/vms.csv:", "on-demand", "free GPUs"):
        assert whole in out
    assert max(len(line) for line in out.splitlines()) > 80


@pytest.mark.parametrize(
    "url",
    ["notaurl", "127.0.0.1:5000", "ftp://127.0.0.1:5000", "http://", "http://:5000", "http://h:x"],
)
def test_an_aws_endpoint_that_is_not_an_http_url_is_refused_when_parsing(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.build_parser().parse_args(["prices", "--config", "p.yaml", "--aws-endpoint", url])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --aws-endpoint: {url!r} is not" in err


@pytest.mark.parametrize("url", ["http://127.0.0.1:5000", "https://ec2.example.com/"])
def test_an_http_or_https_aws_endpoint_is_kept(url: str) -> None:
    args = cli.build_parser().parse_args(["prices", "--config", "p.yaml", "--aws-endpoint", url])
    assert args.aws_endpoint == url
