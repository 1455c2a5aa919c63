"""`--config` where a newcomer puts it: `federator plan --config FILE` puts it after the command,
so `registry list --config FILE` and `sync dataset ... --config FILE` must work too (before,
argparse refused them: "unrecognized arguments: --config")."""

from __future__ import annotations

import argparse

import pytest

from federator import cli


def parsed(*argv: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(list(argv))


@pytest.mark.parametrize(
    "argv",
    [
        ("registry", "list", "--config", "mine.yaml"),
        ("registry", "show", "m", "1", "-c", "mine.yaml"),
        ("registry", "verify", "m", "@latest", "--config", "mine.yaml"),
        ("registry", "publish", "m", "1", "a=b", "--config", "mine.yaml"),
        ("registry", "alias", "m", "latest", "1", "--config", "mine.yaml"),
        ("sync", "dataset", "d", "--to", "cloud-a", "--config", "mine.yaml"),
        ("sync", "models", "--from", "cloud-a", "-c", "mine.yaml"),
    ],
)
def test_config_after_the_action_is_taken(argv: tuple[str, ...]) -> None:
    assert parsed(*argv).config == "mine.yaml"


def test_config_before_the_action_is_not_reset_by_the_action(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FEDERATOR_CONFIG", raising=False)
    assert parsed("registry", "-c", "mine.yaml", "list").config == "mine.yaml"
    assert parsed("sync", "-c", "mine.yaml", "models", "--from", "c").config == "mine.yaml"
    assert parsed("registry", "list").config == "config/sandbox.yaml"


def test_the_last_config_given_wins() -> None:
    assert parsed("registry", "-c", "a.yaml", "list", "-c", "b.yaml").config == "b.yaml"


def test_cluster_after_the_action_is_taken_and_defaults_to_the_registry() -> None:
    assert parsed("registry", "list", "--cluster", "cloud-a").cluster == "cloud-a"
    assert parsed("registry", "--cluster", "cloud-a", "list").cluster == "cloud-a"
    assert parsed("registry", "list").cluster is None


def test_every_argument_of_sync_and_registry_is_explained() -> None:
    parser = cli.build_parser()
    for argv in (["sync", "models"], ["registry", "list"], ["registry", "publish"]):
        action = _subparser(_subparser(parser, argv[0]), argv[1])
        for argument in action._actions:
            assert argument.help, f"{' '.join(argv)} {argument.dest} has no help"


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[name]  # type: ignore[no-any-return]
    raise AssertionError(f"no subcommand {name}")


@pytest.mark.parametrize("command", ["run", "plan", "status", "prices", "simulate"])
def test_every_command_takes_c_and_federator_config_as_sync_does(
    command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = ["--trace", "t.csv"] if command == "simulate" else []
    monkeypatch.delenv("FEDERATOR_CONFIG", raising=False)
    assert str(parsed(command, "-c", "mine.yaml", *extra).config) == "mine.yaml"
    with pytest.raises(SystemExit) as refused:  # no file named anywhere: a usage error
        parsed(command, *extra)
    assert refused.value.code == 2
    assert "-c/--config" in capsys.readouterr().err
    monkeypatch.setenv("FEDERATOR_CONFIG", "from-env.yaml")
    assert str(parsed(command, *extra).config) == "from-env.yaml"
    assert str(parsed(command, "--config", "given.yaml", *extra).config) == "given.yaml"
