"""A malformed kubeconfig file is a `UserError` naming the file and the policy field, never a
traceback: for `clients.connect` itself, and for every command that connects (`plan`,
`status`, `run --once`, `run`).

`federator validate --check-files` already called each of these files "not a kubeconfig"; the
commands that connect crashed on them (a YAML ParserError, a TypeError from the client
library, a UnicodeDecodeError) and exited 1. No cluster is needed: each file fails before a
client is built, or, where a client is built, before a request is sent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from federator import cli, errors
from federator.kube import clients, kubeconfig_text
from tests.support.configs import offline_sandbox_policy

SERVER = "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:1'}}]\n"
USER = "users: [{name: u, user: {token: not-a-real-token}}]\n"
CONTEXT = "contexts: [{name: onprem, context: {cluster: c, user: u}}]\n"

# (file content, what the message says about it)
MALFORMED: dict[str, tuple[bytes, str]] = {
    "broken YAML": (
        b"garbage: [",
        "not valid YAML at line 1, column 11: expected the node content, but found '<stream end>'",
    ),
    "empty file": (b"", "not a kubeconfig (no list of contexts)"),
    "a list": (b"- a", "not a kubeconfig (no list of contexts)"),
    "clusters a number": (b"clusters: 5", "not a kubeconfig (no list of contexts)"),
    "not UTF-8": (b"\xff\xfe", "not UTF-8 text (byte 0)"),
    "contexts a string": (b"contexts: abc", "not a kubeconfig (no list of contexts)"),
    "clusters a number, with contexts": (
        (CONTEXT + "clusters: 5\n" + USER).encode(),
        "not a kubeconfig (clusters is not a list)",
    ),
    "users a number": (
        (CONTEXT + SERVER + "users: 5\n").encode(),
        "not a kubeconfig (users is not a list)",
    ),
    "users a mapping": (
        (CONTEXT + SERVER + "users: {u: {token: t}}\n").encode(),
        "not a kubeconfig (users is not a list)",
    ),
    "a context that is a number": (
        b"contexts: [5]\n" + (SERVER + USER).encode(),
        "not a kubeconfig (contexts[0] is not a mapping with a name)",
    ),
    "a cluster without a name": (
        (CONTEXT + "clusters: [{cluster: {server: 'http://127.0.0.1:1'}}]\n" + USER).encode(),
        "not a kubeconfig (clusters[0] is not a mapping with a name)",
    ),
    "no such context": (
        ("contexts: [{name: other, context: {cluster: c, user: u}}]\n" + SERVER + USER).encode(),
        "no context 'onprem' (contexts: other)",
    ),
    "context body a string": (
        ("contexts: [{name: onprem, context: c}]\n" + SERVER + USER).encode(),
        "context 'onprem' is not a mapping naming a cluster",
    ),
    "context without a cluster": (
        ("contexts: [{name: onprem, context: {user: u}}]\n" + SERVER + USER).encode(),
        "context 'onprem' is not a mapping naming a cluster",
    ),
    "missing cluster": (
        (CONTEXT + "clusters: []\n" + USER).encode(),
        "context 'onprem' names cluster 'c', which is not in clusters (clusters: none)",
    ),
    "missing user": (
        (CONTEXT + SERVER + "users: [{name: v, user: {token: t}}]\n").encode(),
        "context 'onprem' names user 'u', which is not in users (users: v)",
    ),
    "cluster body a number": (
        (CONTEXT + "clusters: [{name: c, cluster: 5}]\n" + USER).encode(),
        "cluster 'c' has no server",
    ),
    "cluster without a server": (
        (CONTEXT + "clusters: [{name: c, cluster: {}}]\n" + USER).encode(),
        "cluster 'c' has no server",
    ),
    "user body a string": (
        (CONTEXT + SERVER + "users: [{name: u, user: t}]\n").encode(),
        "user 'u' is not a mapping",
    ),
    "a name YAML reads as a boolean": (
        (CONTEXT + SERVER + USER + "").replace("name: u,", "name: no,").encode(),
        "users[0]: YAML reads its name as bool False, not text; quote the name",
    ),
}
CASES = [pytest.param(raw, said, id=name) for name, (raw, said) in MALFORMED.items()]


@pytest.mark.parametrize(("raw", "said"), CASES)
async def test_connect_reports_a_malformed_kubeconfig_as_a_user_error_naming_the_file(
    tmp_path: Path, raw: bytes, said: str
) -> None:
    path = tmp_path / "kubeconfig"
    path.write_bytes(raw)
    with pytest.raises(errors.UserError) as caught:
        await clients.connect(path, "onprem", name="onprem")
    assert str(caught.value) == f"{path}: {said}"


async def test_connect_names_the_policy_field_it_is_given(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_bytes(b"")
    field = f"clusters.onprem.connection.kubeconfig: {path}"
    with pytest.raises(errors.UserError) as caught:
        await clients.connect(path, "onprem", name="onprem", source=field)
    assert str(caught.value) == f"{field}: not a kubeconfig (no list of contexts)"


async def test_a_yaml_error_does_not_quote_the_line_it_is_on(tmp_path: Path) -> None:
    token = "sha256~s3cr3t-token-never-printed"
    path = tmp_path / "kubeconfig"
    path.write_text(f"users:\n- name: u\n  user: {{token: {token}\ncontexts: ]]]\n")
    with pytest.raises(errors.UserError) as caught:
        await clients.connect(path, "onprem")
    assert "line 4" in str(caught.value)
    assert token not in str(caught.value)


async def test_a_well_formed_kubeconfig_still_connects_and_resolves_files_beside_it(
    tmp_path: Path,
) -> None:
    (tmp_path / "token").write_text("token-from-a-file-0123456789")
    path = tmp_path / "kubeconfig"
    path.write_text(CONTEXT + SERVER + "users: [{name: u, user: {tokenFile: token}}]\n")
    cluster = await clients.connect(path, "onprem")
    try:
        assert cluster.name == "onprem"
        assert cluster.api.configuration.host == "http://127.0.0.1:1"
        auth = await cluster.api.configuration.auth_settings()
        assert auth["BearerToken"]["value"] == "Bearer token-from-a-file-0123456789"
    finally:
        await cluster.close()


async def test_a_kubeconfig_text_with_a_missing_cluster_is_a_user_error_naming_its_source() -> None:
    with pytest.raises(errors.UserError) as caught:
        await clients.connect_kubeconfig_text(
            CONTEXT + "clusters: []\n" + USER, "onprem", name="cloud-a", source="Secret ns/kc"
        )
    assert str(caught.value) == (
        "Secret ns/kc: context 'onprem' names cluster 'c', which is not in clusters "
        "(clusters: none)"
    )


COMMANDS = [["plan"], ["status"], ["run", "--once"], ["run"]]
COMMAND_CASES = [
    pytest.param(command, raw, said, id=f"{name}-{' '.join(command)}")
    for command in COMMANDS
    for name, (raw, said) in MALFORMED.items()
]


@pytest.mark.parametrize(("command", "raw", "said"), COMMAND_CASES)
def test_commands_that_connect_exit_2_naming_the_field_and_the_file(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
    raw: bytes,
    said: str,
) -> None:
    policy = offline_sandbox_policy(tmp_path)
    kubeconfig = tmp_path / "kubeconfig"  # every cluster of the offline policy uses it
    kubeconfig.write_bytes(raw)
    code = cli.main([*command, "--config", str(policy)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert code == 2, err
    assert err == (
        f"federator: error: clusters.onprem.connection.kubeconfig: {kubeconfig}: {said}\n"
    )


def test_the_credential_watcher_reads_a_context_that_is_not_a_mapping_as_unreadable() -> None:
    """A kubeconfig rewritten mid-run with a string context body was an AttributeError in
    `rotation.selected`, which the watcher does not catch: its task would have died."""
    from federator.kube import rotation

    loaded = {"contexts": [{"name": "onprem", "context": "not a mapping"}]}
    with pytest.raises(kubeconfig_text.KubeconfigUnreadable, match="not a mapping"):
        rotation.selected(loaded, "onprem")


async def test_a_ca_file_that_is_not_a_certificate_is_a_user_error_not_a_traceback(
    tmp_path: Path,
) -> None:
    """The client loads the certificates; its ssl.SSLError was raised past the check (review
    of cd4f32f: the old new_client_from_config call had it inside)."""
    (tmp_path / "ca.crt").write_text("junk\n")
    path = tmp_path / "kubeconfig"
    server = "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1', "
    path.write_text(CONTEXT + server + "certificate-authority: ca.crt}}]\n" + USER)
    with pytest.raises(errors.UserError) as caught:
        await clients.connect(path, "onprem", name="onprem")
    assert str(caught.value).startswith(f"{path}: context 'onprem': ")


@pytest.mark.parametrize("kind", ["file", "secret"])
async def test_a_rotation_that_drops_the_contexts_user_is_unreadable(
    tmp_path: Path, kind: str
) -> None:
    """Refused at start, a context naming a missing user was taken by the credential watcher
    mid-run, which then swapped in a client without credentials."""
    from federator.kube import rotation

    text = CONTEXT + SERVER + "users: [{name: v, user: {token: t}}]\n"
    source: rotation.KubeconfigSource
    if kind == "file":
        path = tmp_path / "kubeconfig"
        path.write_text(text)
        source = rotation.KubeconfigFile(path, "onprem")
    else:

        async def read_secret(namespace: str, name: str) -> dict[str, str]:
            return {"config": text}

        source = rotation.KubeconfigInSecret(read_secret, "ns", "kc", "config", "onprem")
    with pytest.raises(kubeconfig_text.KubeconfigUnreadable, match="names user 'u'"):
        await source.read()


def test_validate_check_files_finds_what_connecting_would_refuse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It only looked for the context's name; `run` then exited 2 on the same file."""
    policy = offline_sandbox_policy(tmp_path)
    kubeconfig = tmp_path / "kubeconfig"  # every cluster of the offline policy uses it
    contexts = ", ".join(
        f"{{name: {name}, context: {{cluster: c, user: {name}-user}}}}"
        for name in ("onprem", "cloud-a", "cloud-b")
    )
    users = ", ".join(f"{{name: {n}-user, user: {{token: t}}}}" for n in ("onprem", "cloud-a"))
    text = f"contexts: [{contexts}]\n{SERVER}users: [{users}, {{name: cloud-b-user, user: {{}}}}]\n"
    kubeconfig.write_text(text)
    assert cli.main(["validate", "--check-files", str(policy)]) == 0, capsys.readouterr().err
    kubeconfig.write_text(text.replace("name: onprem-user", "name: someone-else"))
    capsys.readouterr()
    assert cli.main(["validate", "--check-files", str(policy)]) == 2
    err = capsys.readouterr().err
    assert "clusters[0].connection.kubeconfig" in err
    assert "names user 'onprem-user', which is not in users" in err
