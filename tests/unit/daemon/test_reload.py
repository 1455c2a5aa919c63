"""A policy reload swaps the policy only when the new file is valid; a bad file is counted."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from federator import metrics
from federator.daemon import policy_file
from federator.daemon.policy_file import PolicyHolder

SANDBOX_CONFIG = Path(__file__).resolve().parents[3] / "config" / "sandbox.yaml"


def copy_config(tmp_path: Path) -> Path:
    target = tmp_path / "config" / "sandbox.yaml"
    target.parent.mkdir()
    shutil.copy(SANDBOX_CONFIG, target)
    return target


def failures() -> float:
    return metrics.CONFIG_RELOAD_FAILURES._value.get()


def test_a_valid_change_on_disk_is_noticed_and_takes_effect(tmp_path: Path) -> None:
    path = copy_config(tmp_path)
    holder = PolicyHolder(path)
    assert not holder.changed_on_disk()
    text = path.read_text().replace("margin_fraction: 0.1", "margin_fraction: 0.5")
    path.write_text(text)
    path.touch()
    assert holder.changed_on_disk()
    assert holder.reload()
    assert holder.config.burst.margin_fraction == 0.5


def test_an_invalid_file_is_rejected_counted_and_the_old_policy_stays(tmp_path: Path) -> None:
    path = copy_config(tmp_path)
    holder = PolicyHolder(path)
    before, policy_before = failures(), holder.decision_policy
    path.write_text(path.read_text().replace("margin_fraction: 0.1", "margin_fraktion: 0.1"))
    assert not holder.reload()
    assert failures() == before + 1
    assert holder.decision_policy is policy_before
    assert not holder.changed_on_disk()  # the bad file is not retried in a loop


def test_a_decision_with_an_infinite_wait_is_logged_as_never() -> None:
    from federator.jsonsafe import finite as _finite

    assert _finite(float("inf"), 0) is None
    assert _finite(12.345, 2) == 12.35


def test_kubeconfig_keys_and_tokens_are_registered_for_redaction(tmp_path: Path) -> None:
    from federator.daemon.credentials import _kubeconfig_secrets

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "users:\n"
        "- name: a\n  user: {client-key-data: S0VZ, client-certificate-data: Q0VSVA==}\n"
        "- name: b\n  user: {token: tok-123}\n"
    )
    assert _kubeconfig_secrets(kubeconfig) == ["S0VZ", "tok-123"]
    assert _kubeconfig_secrets(tmp_path / "missing") == []


def test_jobs_are_keyed_by_tenant_name_and_gated_by_the_policy_files_rules(
    tmp_path: Path,
) -> None:
    from federator.daemon.observers import _may_burst, _tenant_of
    from federator.kube.onprem import BurstFacts

    text = copy_config(tmp_path).read_text()
    text = text.replace(
        "  - name: team-a\n    namespaces: [team-a]", "  - name: vision\n    namespaces: [team-a]"
    )
    path = tmp_path / "config" / "sandbox.yaml"
    path.write_text(text)
    config = PolicyHolder(path).config
    assert _tenant_of(config, "team-a") == "vision"
    assert _tenant_of(config, "elsewhere") == "elsewhere"
    facts = BurstFacts(namespace="team-a", queue="team-a", labels={}, annotations={})
    assert _may_burst(config, facts)
    opted_out = BurstFacts("team-a", "team-a", {"federator.io/burst": "never"}, {})
    assert not _may_burst(config, opted_out)


def last_success() -> float:
    return metrics.CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP_SECONDS._value.get()


def test_the_start_up_load_sets_the_last_success_timestamp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    metrics.CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP_SECONDS.set(0)
    monkeypatch.setattr(policy_file.time, "time", lambda: 1_700_000_000.0)
    PolicyHolder(copy_config(tmp_path))
    assert last_success() == 1_700_000_000.0  # was 0 until the first reload
