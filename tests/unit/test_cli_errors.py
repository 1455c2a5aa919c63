"""How the command line reports what goes wrong: federator's own errors as one line (exit 2 for
a mistake in the arguments, 1 for a store or cluster that does not answer), bugs as tracebacks.

Every store in the policy file used here points at 127.0.0.1 ports nothing listens on, and the
calls that would reach them are replaced, so no test waits for retries or touches a server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from federator import cli, daemon, errors
from federator.storage import copying, registry, stores
from tests.support.configs import offline_sandbox_policy


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return offline_sandbox_policy(tmp_path)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def unavailable(*_: Any, **__: Any) -> Any:
    raise errors.StoreUnavailable("onprem (http://127.0.0.1:1)", "listing: could not connect")


# -- 1. operational failures: one line, exit 1 ------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "target", "attribute"),
    [
        (["registry", "list"], registry.ModelRegistry, "models"),
        (["registry", "--cluster", "cloud-a", "list", "m"], registry.ModelRegistry, "versions"),
        (["registry", "show", "m", "@latest"], registry.ModelRegistry, "manifest"),
        (["registry", "verify", "m", "1"], registry.ModelRegistry, "verify"),
        (["registry", "alias", "m", "latest", "1"], registry.ModelRegistry, "move_alias"),
        (["sync", "models", "--from", "cloud-a"], registry, "sync_back"),
        (["sync", "dataset", "imagenet-mini", "--to", "cloud-b"], copying.DatasetCopier, "run"),
    ],
)
def test_a_store_that_does_not_answer_is_one_line_and_exit_1(
    config: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    target: object,
    attribute: str,
) -> None:
    monkeypatch.setattr(target, attribute, unavailable)
    code, _, err = run(capsys, argv[0], "-c", str(config), *argv[1:])
    assert code == 1
    assert "Traceback" not in err
    assert err.splitlines()[-1] == (
        "federator: error: object store onprem (http://127.0.0.1:1) is unavailable: "
        "listing: could not connect; this may pass: retry later"
    )


def test_publish_to_a_store_that_does_not_answer_is_one_line_and_exit_1(
    config: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(registry.ModelRegistry, "publish", unavailable)
    (tmp_path / "f.txt").write_text("weights")
    code, _, err = run(
        capsys, "registry", "-c", str(config), "publish", "m", "1", f"a={tmp_path / 'f.txt'}"
    )
    assert (code, "Traceback" in err) == (1, False)
    assert "object store onprem" in err


def test_a_federator_error_that_is_not_transient_exits_1_without_a_retry_hint(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def mismatch(*_: Any, **__: Any) -> Any:
        raise registry.BlobMismatch("blob sha256:ab… read back 3 bytes, expected 4")

    monkeypatch.setattr(registry.ModelRegistry, "models", mismatch)
    code, _, err = run(capsys, "registry", "-c", str(config), "list")
    assert (code, err) == (1, "federator: error: blob sha256:ab… read back 3 bytes, expected 4\n")


def test_a_mistake_still_exits_2(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(*_: Any, **__: Any) -> Any:
        raise registry.NotInRegistry("model m has no version '9'")

    monkeypatch.setattr(registry.ModelRegistry, "manifest", refused)
    code, _, err = run(capsys, "registry", "-c", str(config), "show", "m", "9")
    assert (code, err) == (2, "federator: error: model m has no version '9'\n")


def test_a_bug_keeps_its_traceback(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def bug(*_: Any, **__: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(registry.ModelRegistry, "models", bug)
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(["registry", "-c", str(config), "list"])


@pytest.mark.parametrize(("level", "traceback"), [("info", False), ("debug", True)])
def test_log_level_debug_shows_the_traceback_of_a_federator_error(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    level: str,
    traceback: bool,
) -> None:
    async def down(*_: Any, **__: Any) -> int:
        raise errors.ClusterUnavailable("onprem", "connection refused")

    monkeypatch.setattr(daemon, "run", down)
    code, _, err = run(capsys, "run", "--config", "policy.yaml", "--log-level", level)
    assert code == 1
    assert ("Traceback" in err) is traceback
    assert err.splitlines()[-1] == (
        "federator: error: cluster onprem is unavailable: connection refused; "
        "this may pass: retry later"
    )


# -- 2. names, versions and paths the registry's format refuses -------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["publish", "Bad Name", "1", "a=@F"], "argument MODEL: model name 'Bad Name'"),
        (["publish", "m", "../x", "a=@F"], "argument VERSION: version '../x'"),
        (["publish", "m", "1", "../a=@F"], "argument PATH=FILE '../a=@F': file path '../a'"),
        (["publish", "m", "1", "/abs=@F"], "argument PATH=FILE '/abs=@F': file path '/abs'"),
        (["publish", "m", "1", "w/../../a=@F"], "file path 'w/../../a' must be relative"),
        (["list", "Bad"], "argument MODEL: model name 'Bad'"),
        (["show", "m", "@a b"], "argument REF: alias 'a b'"),
        (["verify", "m", "1 2"], "argument REF: version '1 2'"),
        (["alias", "m", "x y", "1"], "argument ALIAS: alias 'x y'"),
        (["alias", "m", "latest", "1", "--expect", "../0"], "argument --expect: version '../0'"),
    ],
)
def test_a_name_the_registry_refuses_is_a_mistake_naming_the_argument(
    config: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    expected: str,
) -> None:
    def no_store(*_: Any, **__: Any) -> Any:
        raise AssertionError("no store is reached for an argument that is refused")

    monkeypatch.setattr(stores.Stores, "registry", no_store)
    (tmp_path / "f.txt").write_text("weights")
    argv = [item.replace("@F", str(tmp_path / "f.txt")) for item in argv]
    expected = expected.replace("@F", str(tmp_path / "f.txt"))
    code, _, err = run(capsys, "registry", "-c", str(config), *argv)
    assert code == 2
    assert err.startswith("federator: error: argument "), err
    assert expected in err
    assert err.count("\n") == 1


def test_the_same_path_twice_is_refused_rather_than_one_file_dropped(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "one").write_text("1")
    (tmp_path / "two").write_text("2")
    one, two = f"a={tmp_path / 'one'}", f"a={tmp_path / 'two'}"
    code, _, err = run(capsys, "registry", "-c", str(config), "publish", "m", "1", one, two)
    assert (code, err) == (2, f"federator: error: argument PATH=FILE {two!r}: 'a' is given twice\n")


# -- 3. clusters: only the file's cloud clusters ----------------------------------------------


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["registry", "-c", "CFG", "--cluster", "NAME", "list"], "--cluster"),
        (["sync", "-c", "CFG", "models", "--from", "NAME"], "--from"),
        (["sync", "-c", "CFG", "dataset", "imagenet-mini", "--to", "NAME"], "--to"),
    ],
)
@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("cloud-zz", "no cluster is named 'cloud-zz' in the policy file"),
        ("onprem", "'onprem' is an on-prem cluster"),
    ],
)
def test_a_cluster_that_is_not_a_cloud_of_the_file_is_refused_with_the_choices(
    config: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    option: str,
    name: str,
    reason: str,
) -> None:
    argv = [str(config) if a == "CFG" else name if a == "NAME" else a for a in argv]
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert err.startswith(f"federator: error: argument {option}: {reason}"), err
    assert err.rstrip().endswith("cloud-a, cloud-b"), err
    assert err.count("\n") == 1


def test_an_unknown_dataset_is_refused_with_the_choices(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "sync", "-c", str(config), "dataset", "nope", "--to", "cloud-a")
    assert code == 2
    assert "dataset 'nope'" in err
    assert "(datasets: imagenet-mini, wikitext, patient-scans)" in err


# -- 4. a directory where a file is expected --------------------------------------------------


def test_a_directory_to_publish_is_called_a_directory(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "out").mkdir()
    item = f"a={tmp_path / 'out'}"
    code, _, err = run(capsys, "registry", "-c", str(config), "publish", "m", "1", item)
    assert code == 2
    assert f"{tmp_path / 'out'} is a directory; FILE must be a regular file" in err
    assert "no such file" not in err


def test_a_missing_file_to_publish_is_still_no_such_file(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    item = f"a={tmp_path / 'missing'}"
    code, _, err = run(capsys, "registry", "-c", str(config), "publish", "m", "1", item)
    assert (code, err) == (
        2,
        f"federator: error: argument PATH=FILE {item!r}: {tmp_path / 'missing'}: no such file\n",
    )


@pytest.mark.parametrize(
    ("argv", "kind"), [(["show", "m", "1"], "manifest"), (["show", "m", "@prod"], "alias pointer")]
)
def test_an_object_of_the_registry_that_does_not_decode_is_one_line_naming_it(
    config: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    kind: str,
) -> None:
    monkeypatch.setattr(registry.ModelRegistry, "_get", lambda *_: (b"{not json", '"e"'))
    code, _, err = run(capsys, "registry", "-c", str(config), *argv)
    assert (code, "Traceback" in err, len(err.splitlines())) == (1, False, 1)
    assert f"models/m/{'versions/1' if kind == 'manifest' else 'aliases/prod'}.json" in err
    assert f"not a federator model {kind}" in err or f"not a federator {kind}" in err
