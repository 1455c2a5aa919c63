"""Every kind of mistake is reported at its exact line and field path, with a useful message."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.unit.policy.helpers import BASE, edited, errors_of


@dataclass(frozen=True)
class Case:
    id: str
    text: str
    line: int
    path: str
    message: str  # a fragment the message must contain
    column: int | None = None


CASES = [
    Case(
        "misspelt key gets a suggestion",
        edited(("    region: us-east-1", "    regoin: us-east-1")),
        7,
        "clusters[1].regoin",
        "unknown field `regoin`; did you mean `region`?",
        column=5,
    ),
    Case(
        "unknown key without a close match lists the allowed ones",
        edited(append="burst:\n  flux_capacitor: 3\n"),
        20,
        "burst.flux_capacitor",
        "allowed here: policy, decision_interval",
    ),
    Case(
        "wrong choice gets a suggestion",
        edited(("    role: cloud", "    role: clod")),
        6,
        "clusters[1].role",
        "'clod' is not one of: onprem, cloud; did you mean 'cloud'?",
        column=11,
    ),
    Case(
        "a duration without a unit",
        edited(append="burst:\n  min_wait: 15\n"),
        20,
        "burst.min_wait",
        "'15' has no unit; write the unit explicitly, e.g. 15s",
    ),
    Case(
        "a duration with an unknown unit",
        edited(append="burst:\n  cooldown: 5 minutes\n"),
        20,
        "burst.cooldown",
        "is not a duration",
    ),
    Case(
        "a size without a unit",
        edited(append="sync:\n  part_size: 64\n"),
        20,
        "sync.part_size",
        "has no unit",
    ),
    Case(
        "a missing required field is reported at its mapping",
        edited(("        gpu_type: A100", "        zone: us-east-1a")),
        10,
        "clusters[1].pools[0].gpu_type",
        "required field `gpu_type` is missing",
        column=9,
    ),
    Case(
        "a list where a mapping belongs",
        edited(append="burst:\n  - min_wait: 1m\n"),
        20,
        "burst",
        "expected a mapping (`key: value` lines) here, found a list",
    ),
    Case(
        "a mapping where a list belongs",
        edited(append="tenants:\n  name: team-a\n"),
        20,
        "tenants",
        "expected a list (lines starting with `- `) here, found a mapping",
    ),
    Case(
        "an unknown price source",
        edited(
            (
                "        price: {source: fixed, usd_per_gpu_hour: 1.5}",
                "        price: {source: spot-api, usd_per_gpu_hour: 1.5}",
            )
        ),
        15,
        "clusters[1].pools[0].price",
        "`source: spot-api` is not a known kind",
    ),
    Case(
        "a field of a price source, by its tag",
        edited(
            (
                "        price: {source: fixed, usd_per_gpu_hour: 1.5}",
                "        price: {source: catalog, file: vms.csv, instance_type: p4d.24xlarge}",
            )
        ),
        15,
        "clusters[1].pools[0].price.region",
        "required field `region` is missing",
    ),
    Case(
        "a negative number",
        edited(("        max_gpus: 16", "        max_gpus: -1")),
        14,
        "clusters[1].pools[0].max_gpus",
        "must be greater than or equal to 0 (found -1)",
    ),
    Case(
        "a name that is not a DNS label",
        edited(("  - name: cloud-a", "  - name: Cloud_A")),
        5,
        "clusters[1].name",
        "must be lowercase letters, digits and dashes",
    ),
    Case(
        "a connection that says nothing",
        edited(
            (
                "    connection: {kubeconfig: kube.yaml, context: onprem}",
                "    connection: {context: onprem}",
            )
        ),
        4,
        "clusters[0].connection",
        "set exactly one of kubeconfig, kubeconfig_secret",
    ),
    Case(
        "a LocalQueue without its namespace",
        edited(("  - kind: ClusterQueue", "  - kind: LocalQueue")),
        17,
        "queues[0]",
        "a LocalQueue needs its `namespace`",
    ),
    Case(
        "live AWS spot prices for an on-demand pool",
        edited(
            ("        capacity_type: spot", "        capacity_type: on-demand"),
            (
                "        price: {source: fixed, usd_per_gpu_hour: 1.5}",
                "        price: {source: aws-spot-api, instance_type: p5.48xlarge, "
                "region: us-east-1}",
            ),
        ),
        10,
        "clusters[1].pools[0]",
        "aws-spot-api only prices spot capacity",
    ),
    Case(
        "a secret key written inline",
        edited(append="registry:\n  uri: s3://models/registry/\n  token: abc123\n"),
        21,
        "registry.token",
        "reference them instead with `credentials: {env:",
    ),
    Case(
        "an AWS access key ID in any value",
        edited(("    region: us-east-1", "    region: AKIAIOSFODNN7EXAMPLE")),
        7,
        "clusters[1].region",
        "looks like an AWS access key ID",
    ),
    Case(
        "an environment variable reference holding a value",
        edited(append=("datasets: []\n")).replace(
            "    connection: {kubeconfig: kube.yaml, context: onprem}\n",
            "    connection: {kubeconfig: kube.yaml, context: onprem}\n"
            "    object_store:\n"
            "      credentials: {env: {access_key_id: my key, secret_access_key: S}}\n",
        ),
        6,
        "clusters[0].object_store.credentials.env.access_key_id",
        "must be the NAME of an environment variable",
    ),
    Case(
        "a tenant naming an unknown cluster",
        edited(
            append="tenants:\n  - name: t\n    namespaces: [a]\n    allowed_clusters: [cloud-z]\n"
        ),
        22,
        "tenants[0].allowed_clusters[0]",
        "no cluster is named 'cloud-z' (cloud clusters: cloud-a)",
    ),
    Case(
        "a tenant naming the on-prem cluster as a cloud",
        edited(
            append="tenants:\n  - name: t\n    namespaces: [a]\n    allowed_clusters: [onprem]\n"
        ),
        22,
        "tenants[0].allowed_clusters[0]",
        "'onprem' is an on-prem cluster",
    ),
    Case(
        "a residency rule for an unknown dataset",
        edited(append="residency:\n  - dataset: scans\n"),
        20,
        "residency[0].dataset",
        "no dataset is named 'scans'",
    ),
    Case(
        "two clusters with one name",
        edited(("  - name: cloud-a", "  - name: onprem")),
        5,
        "clusters[1].name",
        "another cluster is already named 'onprem'",
    ),
    Case(
        "a namespace owned by two tenants",
        edited(
            append="tenants:\n  - name: a\n    namespaces: [ml]\n"
            "  - name: b\n    namespaces: [ml]\n"
        ),
        23,
        "tenants[1].namespaces[0]",
        "already belongs to tenant 'a'",
    ),
    Case(
        "no on-prem cluster",
        "clusters:\n"
        + BASE.split("\n", 4)[4].split("queues:")[0]
        + "queues: [{kind: ClusterQueue, name: q}]\n",
        2,
        "clusters",
        "no cluster has `role: onprem`",
    ),
    Case(
        "a cloud cluster without pools",
        edited(
            ("    pools:", "    pools: []"),
            ("      - name: a100-spot", ""),
            ("        gpu_type: A100", ""),
            ("        gpus_per_node: 8", ""),
            ("        capacity_type: spot", ""),
            ("        max_gpus: 16", ""),
            ("        price: {source: fixed, usd_per_gpu_hour: 1.5}", ""),
        ),
        5,
        "clusters[1]",
        "a cloud cluster needs at least one entry in `pools`",
    ),
    Case(
        "a key written twice",
        edited(append="burst: {}\nburst: {}\n"),
        20,
        "burst",
        "`burst` is written twice in the same mapping (first at line 19)",
    ),
    Case(
        "two merge keys in one mapping",
        edited(
            append="tenants:\n  - &t {name: a, namespaces: [a]}\n  - &u {budget_usd_per_month: 5}\n"
            "  - <<: *t\n    <<: *u\n    name: b\n    namespaces: [b]\n"
        ),
        23,
        "tenants[2]",
        "`<<` is written twice in the same mapping (first at line 22); merge several anchors "
        "with one `<<: [*first, *second]`",
    ),
    Case(
        "two merge keys in a mapping that is itself merged in",
        edited(
            append="tenants:\n  - &t {name: a, namespaces: [a]}\n  - &u {budget_usd_per_month: 5}\n"
            "  - <<: {<<: *t, <<: *u}\n    name: b\n    namespaces: [b]\n"
        ),
        22,
        "tenants[2]",
        "`<<` is written twice in the same mapping (first at line 22); merge several anchors "
        "with one `<<: [*first, *second]`",
    ),
    Case(
        "a key written twice in a mapping that is merged in",
        edited(
            append="tenants:\n  - <<: {name: a, namespaces: [a], name: c}\n    name: b\n"
            "    namespaces: [b]\n"
        ),
        20,
        "tenants[0]",
        "`name` is written twice in the same mapping (first at line 20); keep one",
    ),
    Case(
        "a merge of a single value",
        edited(append="tenants:\n  - <<: 5\n    name: b\n    namespaces: [b]\n"),
        20,
        "tenants[0]",
        "`<<` merges a mapping (`<<: *anchor`) or a list of mappings (`<<: [*first, *second]`), "
        "not a single value",
    ),
    Case(
        "a merge of a list holding a list",
        edited(
            append="tenants:\n  - &t {name: a, namespaces: [a]}\n  - <<: [*t, [x]]\n"
            "    name: b\n    namespaces: [b]\n"
        ),
        21,
        "tenants[1]",
        "not a list",
    ),
    Case(
        "a YAML syntax error",
        edited(append="burst: [unclosed\n"),
        20,
        "(top level)",
        "YAML syntax error",
    ),
    Case(
        "a tab in the indentation",
        edited(append="burst:\n\tmin_wait: 1m\n"),
        20,
        "(top level)",
        "(YAML indents with spaces, never tabs)",
    ),
    Case(
        "an empty list where entries are required",
        edited(("  - kind: ClusterQueue", "  []"), ("    name: onprem", "")).replace(
            "queues:\n  []", "queues: []"
        ),
        16,
        "queues",
        "needs at least 1 entry",
    ),
    Case("an empty file", "", 1, "(top level)", "the file is empty"),
    Case("a file of comments only", "# nothing yet\n", 1, "(top level)", "the file is empty"),
    Case(
        "a list at the top level",
        "- a\n- b\n",
        1,
        "(top level)",
        "expected a mapping (`key: value` lines) here, found a list",
    ),
    Case(
        "a wrong format version", edited(append="version: 2\n"), 19, "version", "2 is not one of: 1"
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_invalid_file_is_reported_at_the_line_and_field_to_fix(case: Case) -> None:
    errors = errors_of(case.text)
    matching = [e for e in errors if e.field_path == case.path]
    assert matching, f"no error at {case.path}; got: {[str(e) for e in errors]}"
    error = matching[0]
    assert error.line == case.line, str(error)
    assert case.message in error.message, str(error)
    if case.column is not None:
        assert error.column == case.column, str(error)
    assert str(error).startswith(f"policy.yaml:{case.line}:{error.column}: {case.path}: ")


def test_every_problem_of_a_file_is_reported_at_once() -> None:
    text = edited(
        ("    role: cloud", "    role: clod"),
        ("        max_gpus: 16", "        max_gpus: x"),
        append="burst:\n  min_wait: 15\n",
    )
    assert [(e.line, e.field_path) for e in errors_of(text)] == [
        (6, "clusters[1].role"),
        (14, "clusters[1].pools[0].max_gpus"),
        (20, "burst.min_wait"),
    ]


def test_an_inline_secret_under_an_unknown_key_is_reported_once_as_a_secret() -> None:
    errors = errors_of(edited(append="registry:\n  uri: s3://models/registry/\n  token: abc\n"))
    assert [e.field_path for e in errors] == ["registry.token"]


def test_reference_problems_are_reported_with_field_errors_of_other_sections() -> None:
    text = edited(
        append="burst: {min_wait: 3}\ntenants:\n  - name: t\n    namespaces: [a]\n"
        "    allowed_clusters: [cloud-z]\n"
    )
    assert [(e.line, e.field_path) for e in errors_of(text)] == [
        (19, "burst.min_wait"),
        (23, "tenants[0].allowed_clusters[0]"),
    ]


def test_references_into_an_invalid_section_are_not_guessed_at() -> None:
    text = edited(
        ("        max_gpus: 16", "        max_gpus: x"),
        append="tenants:\n  - name: t\n    namespaces: [a]\n    allowed_clusters: [cloud-z]\n",
    )
    assert [e.field_path for e in errors_of(text)] == ["clusters[1].pools[0].max_gpus"]


def test_a_quoted_version_number_says_to_unquote_it() -> None:
    """It read "'1' is not one of: 1; did you mean '1'?"."""
    errors = errors_of('version: "1"\n' + BASE)
    assert [(e.line, e.field_path, e.message) for e in errors] == [
        (1, "version", "'1' is not one of: 1; write 1 without quotes (a number, not text)")
    ]


def test_a_byte_that_is_not_utf8_or_a_nul_is_reported_at_its_line(tmp_path: Path) -> None:
    """Both were reported at 1:1, the NUL with PyYAML's 'position 527' in the text."""
    from federator.policy import PolicyFileError, load_policy

    lines = BASE.splitlines()
    for name, bad, message in [
        ("latin1.yaml", b" \xe9", "the file is not UTF-8 text (byte 0xe9: invalid continuation"),
        ("nul.yaml", b"\x00", "character U+0000 is not allowed in YAML"),
    ]:
        data = "\n".join(lines[:3]).encode() + b"\n" + lines[3].encode() + bad + b"\n"
        data += "\n".join(lines[4:]).encode() + b"\n"
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(PolicyFileError) as caught:
            load_policy(path)
        (error,) = caught.value.errors
        assert (error.line, error.column) == (4, len(lines[3]) + (2 if bad[0] == 32 else 1))
        assert error.message.startswith(message)


@pytest.mark.parametrize(
    ("extra", "where", "message"),
    [
        ("1: x", "(top level)", "a mapping key must be text, but YAML reads `1` as a number"),
        ("~: x", "(top level)", "a mapping key must be text, but YAML reads `~` as null"),
        (
            "cost: {gpu_speed: {3090: 1.2}}",
            "cost.gpu_speed",
            "a mapping key must be text, but YAML reads `3090` as a number; quote it ('3090')",
        ),
        (
            "burst: {decision_interval: !foo 10s}",
            "burst.decision_interval",
            "unknown YAML tag `!foo`: a policy file uses none; remove it",
        ),
        (
            "burst: {decision_interval: 2024-01-01}",
            "burst.decision_interval",
            "'2024-01-01' is not a duration",
        ),
    ],
)
def test_what_yaml_makes_of_a_word_is_said_once_in_the_files_terms(
    extra: str, where: str, message: str
) -> None:
    """They read "[1]: Keys should be strings", PyYAML's three-line tag error followed by a
    second error for the same field, and "got datetime.date(2024, 1, 1)"."""
    errors = errors_of(BASE + extra + "\n")
    assert [(e.field_path, e.message[: len(message)]) for e in errors] == [(where, message)]


def test_a_mapping_merged_in_and_aliased_again_is_reported_once() -> None:
    text = edited(
        append="tenants:\n  - <<: &t {name: a, namespaces: [a], name: c}\n    name: b\n"
        "    namespaces: [b]\n  - *t\n  - <<: *t\n    name: d\n    namespaces: [d]\n"
    )
    assert [(e.line, e.field_path) for e in errors_of(text)] == [(20, "tenants[0]")]
