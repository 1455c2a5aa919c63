"""The policy in force: the file loaded at start, and swapped only for a valid new version.

Every loop reads the policy through one `PolicyHolder`, so a reload reaches them all at once;
an invalid file on disk is rejected and counted, and the old policy stays in force. The
counter series a policy implies start at 0 here too, at start and again after a reload
(a reload may add caps, tenants and replicas).
"""

from __future__ import annotations

import time
from pathlib import Path

import structlog

from federator import budgets, metrics, policy
from federator.daemon.replicas import replica_pairs
from federator.prices import metrics as price_metrics

log = structlog.get_logger(__name__)


class PolicyHolder:
    """The policy in force; a reload swaps it only when the new file is valid."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.config = policy.load_policy(path)
        self.decision_policy = policy.to_decision_policy(self.config)
        self._mtime = _mtime(path)
        # The start-up load is the first success: "when the policy in force was loaded".
        metrics.CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP_SECONDS.set(time.time())

    def changed_on_disk(self) -> bool:
        return _mtime(self.path) != self._mtime

    def reload(self) -> bool:
        """Load the file again; keep the old policy (and count a failure) if it is invalid."""
        self._mtime = _mtime(self.path)
        try:
            config = policy.load_policy(self.path)
            decision_policy = policy.to_decision_policy(config)
        except policy.PolicyFileError as error:
            metrics.CONFIG_RELOAD_FAILURES.inc()
            log.error("config_reload_rejected", path=str(self.path), errors=str(error))
            return False
        self.config, self.decision_policy = config, decision_policy
        metrics.CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP_SECONDS.set(time.time())
        log.info("config_reloaded", path=str(self.path))
        return True


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return -1.0


def initialise_metrics(config: policy.FederatorConfig) -> None:
    """Every counter series the policy file implies, at 0 (see `metrics.initialise`)."""
    metrics.initialise(
        cloud_clusters=[c.name for c in config.cloud_clusters],
        budget_scopes=budgets.scopes_of(config),
        replica_pairs=replica_pairs(config),
    )
    price_metrics.initialise(price_metrics.live_sources(config))
