"""`federator validate` and `federator schema`, run as a user runs them: a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def federator(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "federator", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_valid_file_exits_0_with_a_summary() -> None:
    result = federator("validate", "config/sandbox.yaml")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("config/sandbox.yaml: valid\n")
    for expected in (
        "cluster cloud-a (cloud, aws/us-east-1): a100-spot spot A100 up to 32 GPUs",
        "h100-ondemand on-demand H100 up to 16 GPUs",
        "queues: ClusterQueue onprem, LocalQueue team-a/team-a, LocalQueue team-b/team-b",
        "tenant team-a (team-a): bursts to cloud-a, cloud-b",
        "budgets: $500/hour, $5,000/day",
        "patient-scans never leaves on-prem",
    ):
        assert expected in result.stdout
    assert result.stderr == ""


def test_the_sandbox_config_validates_from_another_directory(tmp_path: Path) -> None:
    result = federator("validate", "--quiet", str(REPO / "config" / "sandbox.yaml"), cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


BAD = """\
clusters:
  - name: onprem
    role: onprem
    conection: {in_cluster: true}
queues:
  - kind: ClusterQueue
    name: onprem
burst:
  min_wait: 15
"""


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            BAD,
            [
                "bad.yaml:2:5: clusters[0].connection: required field `connection` is missing",
                "bad.yaml:4:5: clusters[0].conection: unknown field `conection`; did you mean "
                "`connection`?",
                "bad.yaml:9:13: burst.min_wait: '15' has no unit",
            ],
        ),
        ("", ["bad.yaml:1:1: (top level): the file is empty"]),
        ("- just\n- a list\n", ["bad.yaml:1:1: (top level): expected a mapping"]),
        ("clusters: [\n", ["bad.yaml:2:1: (top level): YAML syntax error"]),
        ("\xff\xfe", None),
    ],
    ids=["field errors", "empty", "list", "syntax", "binary"],
)
def test_a_bad_file_exits_2_with_every_error_located(
    tmp_path: Path, content: str, expected: list[str] | None
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(content.encode("latin-1"))
    result = federator("validate", "bad.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[-1].startswith("bad.yaml: invalid (")
    if expected is not None:
        assert len(lines) == len(expected) + 1, result.stderr
        for line, fragment in zip(lines, expected, strict=False):
            assert line.startswith(fragment), line
    else:
        assert lines[0].startswith("bad.yaml:1:1: (top level): ")


@pytest.mark.parametrize("target", ["missing.yaml", "."])
def test_an_unreadable_file_exits_2_without_a_traceback(tmp_path: Path, target: str) -> None:
    result = federator("validate", target, cwd=tmp_path)
    assert result.returncode == 2
    assert f"{target}:1:1: (top level): cannot read the file" in result.stderr
    assert "Traceback" not in result.stderr


def test_validate_without_a_file_is_a_usage_error() -> None:
    result = federator("validate")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_schema_prints_the_committed_json_schema() -> None:
    result = federator("schema")
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    assert schema["title"] == "federator policy file"
    assert "clusters" in schema["required"]
    committed = json.loads((REPO / "config" / "federator.schema.json").read_text())
    assert schema == committed


def test_validate_help_reads_like_documentation() -> None:
    result = federator("validate", "--help")
    assert result.returncode == 0
    assert "FILE:LINE:COL: field.path:" in result.stdout


def test_check_files_reports_a_missing_kubeconfig_at_its_line(tmp_path: Path) -> None:
    text = (REPO / "config" / "sandbox.yaml").read_text()
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "policy.yaml").write_text(text)
    plain = federator("validate", "-q", "config/policy.yaml", cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr
    checked = federator("validate", "--check-files", "config/policy.yaml", cwd=tmp_path)
    assert checked.returncode == 2
    line = next(n for n, row in enumerate(text.splitlines(), 1) if "kubeconfig:" in row)
    assert (
        f"config/policy.yaml:{line}:19: clusters[0].connection.kubeconfig: "
        f"{tmp_path}/.sandbox/kubeconfig does not exist"
    ) in checked.stderr
    assert "Traceback" not in checked.stderr


def test_check_files_reports_every_file_problem_in_one_run(tmp_path: Path) -> None:
    """A missing kubeconfig used to hide what was wrong inside the catalogs and the Spot
    Advisor file until it was fixed; now one run says all of it."""
    shared = REPO.parent / "shared"
    text = (REPO / "config" / "sandbox.yaml").read_text().replace("../../shared", str(shared))
    not_a_catalog, not_json = tmp_path / "prices.csv", tmp_path / "advisor.json"
    not_a_catalog.write_text("a,b\n1,2\n")
    not_json.write_text("no\n")
    lines = text.splitlines()
    first_catalog = next(n for n, row in enumerate(lines) if "vms.csv" in row)
    lines[first_catalog] = lines[first_catalog].split("file:")[0] + f"file: {not_a_catalog}"
    advisor = next(n for n, row in enumerate(lines) if "interruption_data:" in row)
    lines[advisor] = f"  interruption_data: {not_json}"
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "policy.yaml").write_text("\n".join(lines) + "\n")

    checked = federator("validate", "--check-files", "config/policy.yaml", cwd=tmp_path)

    assert checked.returncode == 2
    err = checked.stderr
    assert "clusters[0].connection.kubeconfig:" in err
    assert f"clusters[1].pools[0].price.file: {not_a_catalog}:1: not a SkyPilot catalog" in err
    assert f"prices.interruption_data: {not_json}:1:1: not JSON" in err
    assert err.count("clusters[0].connection") == 1, "a missing kubeconfig is said once"
    assert "Traceback" not in err
