"""`federator run`'s command line: the log level option."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from federator import cli, daemon


def parse(*argv: str) -> object:
    return cli.build_parser().parse_args(["run", "--config", "policy.yaml", *argv])


def test_the_log_level_defaults_to_info_and_is_case_insensitive() -> None:
    assert parse().log_level == "info"
    assert parse("--log-level", "DEBUG").log_level == "debug"


def test_an_unknown_log_level_is_a_usage_error_listing_the_choices(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse("--log-level", "loud")
    assert exited.value.code == 2
    assert "debug, info, warning, error" in capsys.readouterr().err.replace("'", "")


async def test_the_daemon_sets_the_level_before_anything_else(tmp_path: Path) -> None:
    """Even a policy file that fails to load runs under the requested level."""
    missing = tmp_path / "missing.yaml"
    previous = logging.getLogger().level
    try:
        with pytest.raises(Exception):  # noqa: B017, PT011 - the policy error is not the point
            await daemon.run(missing, log_level="error")
        assert logging.getLogger().level == logging.ERROR
        with pytest.raises(Exception):  # noqa: B017, PT011
            await daemon.run(missing, log_level="debug")
        assert logging.getLogger().level == logging.DEBUG
    finally:
        logging.getLogger().setLevel(previous)
