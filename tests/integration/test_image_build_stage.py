"""The container image's build stage, replayed without Docker (this machine has no engine).

deploy/Dockerfile's first stage copies a few paths into /src, creates a virtualenv in
/opt/federator, installs federator into it and runs `federator --version`. This test runs
exactly the COPY and RUN lines of that stage (read from the Dockerfile, so it follows its
edits) in a temporary directory standing in for `/`, with this machine's Python 3.11 in place
of the `python:3.11-slim` base image. It proves the image is buildable from what the stage
copies (no file outside `COPY` is needed at run time) and that the installed command works
from a clean virtualenv. It cannot prove the base image or the runtime stage's user.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "deploy" / "Dockerfile"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def build_stage() -> list[str]:
    """The instructions of the stage named `build`, continuation lines joined."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    stage = re.search(r"^FROM \S+ AS build$(.*?)^FROM ", text, flags=re.MULTILINE | re.DOTALL)
    assert stage is not None, "deploy/Dockerfile has no stage named build"
    return [line.strip() for line in stage.group(1).splitlines() if line.strip()[:1].isalpha()]


def copy_like_docker(source: Path, workdir: Path, target: str) -> None:
    """COPY's rules: a directory's contents go to the target; a target ending in "/" is a
    directory the sources go into. Caches are left out, as Dockerfile.dockerignore does."""
    into = target.endswith("/")
    destination = workdir / target
    if source.is_dir():
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        shutil.copytree(source, destination / source.name if into else destination, ignore=ignore)
        return
    (destination if into else destination.parent).mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, destination / source.name if into else destination)


def test_the_build_stage_installs_a_working_federator_from_what_it_copies(
    tmp_path: Path,
) -> None:
    root = tmp_path / "image"
    root.mkdir()
    workdir = root
    shell_env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    shell_env.pop("VIRTUAL_ENV", None)
    ran: list[str] = []
    for line in build_stage():
        keyword, _, rest = line.partition(" ")
        rooted = rest.replace("/opt/", f"{root}/opt/").replace("/src", f"{root}/src")
        if keyword == "WORKDIR":
            workdir = Path(rooted)
            workdir.mkdir(parents=True, exist_ok=True)
        elif keyword == "COPY":
            *sources, target = rooted.split()
            for source in sources:
                copy_like_docker(REPO / source, workdir, target)
        elif keyword == "RUN":
            command = rooted.replace("python -m venv", f"{sys.executable} -m venv", 1)
            done = subprocess.run(
                command, shell=True, cwd=workdir, env=shell_env, capture_output=True, text=True,
                timeout=800, check=False,
            )  # fmt: skip
            assert done.returncode == 0, f"RUN {rest}\n{done.stdout[-2000:]}{done.stderr[-3000:]}"
            ran.append(rest)
    assert any("pip install" in command for command in ran), "the stage installs federator"

    federator = root / "opt" / "federator" / "bin" / "federator"
    example = REPO / "deploy" / "overlays" / "example" / "config" / "federator.yaml"
    for args in (["--version"], ["run", "--help"], ["validate", str(example)]):
        done = subprocess.run(
            [str(federator), *args], cwd=tmp_path, capture_output=True, text=True,
            timeout=120, check=False, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        )  # fmt: skip
        assert done.returncode == 0, f"federator {' '.join(args)}: {done.stderr[-2000:]}"
    installed = subprocess.run(
        [str(federator.parent / "python"), "-c", "import federator; print(federator.__file__)"],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    )  # fmt: skip
    assert str(root / "opt" / "federator") in installed.stdout, "not the repository's copy"
