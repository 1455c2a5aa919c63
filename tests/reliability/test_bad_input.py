"""Hostile and malformed input: each gets a clear error naming the place, exit 2, no traceback.

Config files go through `federator validate` as a user would run it (a subprocess, so a hang
or a crash of the whole interpreter is caught too). The deadline on each run is a hang
detector, not a performance threshold: a valid file validates in a few seconds; a file that
is still being parsed after `HANG_S` is treated as a denial of service.

Already covered elsewhere and not repeated: field-level mistakes located at file:line:col
(tests/unit/policy/test_invalid_files.py), prices that are negative, NaN, infinite, stale or
spot above on-demand (tests/unit/prices/test_validation.py, including a property test), a
price endpoint that does not answer (tests/integration/test_prices_aws_moto.py), an invalid
file on reload keeping the old policy (tests/unit/daemon/test_reload.py).
"""

from __future__ import annotations

import os
import resource
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import configs

HANG_S = 30.0
MEMORY_CAP = 2 * 1024**3  # a validation that needs more than 2 GiB is a denial of service


def federator(*args: str, timeout_s: float = HANG_S) -> subprocess.CompletedProcess[str]:
    def cap_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))

    try:
        return subprocess.run(
            [str(configs.REPO / ".venv" / "bin" / "federator"), *args],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            cwd=configs.REPO,
            preexec_fn=cap_memory,
        )
    except subprocess.TimeoutExpired:
        raise AssertionError(
            f"`federator {' '.join(args)}` still ran after {timeout_s:.0f} s"
        ) from None


def assert_clear_user_error(result: subprocess.CompletedProcess[str], path: Path) -> None:
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output[-2000:]
    assert result.returncode == 2, (result.returncode, output[-2000:])
    assert str(path) in output, f"the message must name the file: {output[-500:]}"


# ---- the hostile files -------------------------------------------------------------------


def billion_laughs(path: Path) -> None:
    """Ten levels of ten aliases: 10^10 strings once expanded, a few hundred bytes on disk."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    lines.append("instance: *a9")
    path.write_text("\n".join(lines) + "\n")


def deep_sequence(path: Path) -> None:
    path.write_text("instance: " + "[" * 20_000 + "]" * 20_000 + "\n")


def deep_mapping(path: Path) -> None:
    path.write_text("".join(" " * i + f"k{i}:\n" for i in range(3_000)) + " " * 3_000 + "x: 1\n")


def huge(path: Path) -> None:
    """A 64 MiB file: nobody's policy is that long; it must be refused, not parsed for minutes."""
    with path.open("w") as out:
        out.write("instance: sandbox\n")
        line = "# " + "x" * 1022 + "\n"
        for _ in range(64 * 1024):
            out.write(line)


def binary(path: Path) -> None:
    path.write_bytes(bytes(range(256)) * 16 + os.urandom(4096))


def nul_byte(path: Path) -> None:
    path.write_bytes(b"instance: a\x00b\nclusters: []\n")


def latin1(path: Path) -> None:
    path.write_bytes("instance: caf\xe9\n".encode("latin-1"))


def empty(path: Path) -> None:
    path.write_text("")


def not_a_mapping(path: Path) -> None:
    path.write_text("- just\n- a\n- list\n")


def python_tag(path: Path) -> None:
    """A YAML tag that would run a command under an unsafe loader."""
    marker = path.with_suffix(".pwned")
    path.write_text(f"instance: !!python/object/apply:os.system ['touch {marker}']\n")


def duplicate_keys(path: Path) -> None:
    path.write_text("instance: a\ninstance: b\nclusters: []\n")


HOSTILE: dict[str, Callable[[Path], None]] = {
    "binary": binary,
    "nul-byte": nul_byte,
    "latin1": latin1,
    "empty": empty,
    "not-a-mapping": not_a_mapping,
    "python-tag": python_tag,
    "duplicate-keys": duplicate_keys,
}

# Bugs in the policy engineer's loader (federator/policy/sourcemap.py), reported to the lead.
HOSTILE_BROKEN: dict[str, tuple[Callable[[Path], None], str]] = {
    "billion-laughs": (
        billion_laughs,
        "federator/policy/sourcemap.py:114-119 _Builder.build re-builds an aliased node at every "
        "alias (no alias or size limit): 10 levels of 10 aliases expand to 10^10 nodes, runs for "
        "minutes and eats GBs",
    ),
    "deep-sequence": (
        deep_sequence,
        "federator/policy/sourcemap.py:78 yaml.compose and :114 _Builder.build recurse per "
        "nesting level; RecursionError escapes as a traceback with exit 1",
    ),
    "deep-mapping": (
        deep_mapping,
        "federator/policy/sourcemap.py:78/:126 recursion per nesting level; RecursionError "
        "escapes as a traceback with exit 1",
    ),
    "huge": (
        huge,
        "federator/policy/loading.py:45 reads and parses a file of any size (no cap): a 64 MiB "
        "file keeps the pure-Python YAML scanner busy for minutes",
    ),
}


@pytest.mark.parametrize("make", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_config_file_is_a_clear_error(
    make: Callable[[Path], None], tmp_path: Path
) -> None:
    path = tmp_path / "hostile.yaml"
    make(path)
    assert_clear_user_error(federator("validate", str(path)), path)
    assert not path.with_suffix(".pwned").exists(), "a YAML tag ran a command"


@pytest.mark.parametrize(
    "make",
    [
        # Each was a bug (the reason says where); fixed by bounds in federator/policy/sourcemap.py
        # (nodes, depth, RecursionError) and loading.py (file size).
        pytest.param(make, id=name)
        for name, (make, _fixed_bug) in HOSTILE_BROKEN.items()
    ],
)
def test_a_resource_exhausting_config_file_is_a_clear_error(
    make: Callable[[Path], None], tmp_path: Path
) -> None:
    path = tmp_path / "hostile.yaml"
    make(path)
    assert_clear_user_error(federator("validate", str(path)), path)


def test_a_directory_or_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    for path in (tmp_path, tmp_path / "missing.yaml"):
        assert_clear_user_error(federator("validate", str(path)), path)
