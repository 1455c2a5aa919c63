"""The federation loop's knobs (`FederationSettings`), its own module so that the loop's
collaborators read them without importing the loop; `federation.py` re-exports it.

The daemon fills them from the policy file and replaces them on a reload, so a collaborator
reads them through the loop at each use (`settings=lambda: self.settings`), never a copy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class FederationSettings:
    """The loop's knobs; the daemon fills them from the policy file (`burst`, `clusters`)."""

    instance: str = "federator"
    interval_s: float = 10.0
    lost_cluster_timeout_s: Mapping[str, float] = field(default_factory=dict)
    default_lost_cluster_timeout_s: float = 300.0
    max_replacements: int = 3
    replace_backoff_s: float = 30.0
    replace_max_backoff_s: float = 600.0
    block_pool_for_s: float = 1800.0  # after a preemption, the pool offers 0 GPUs this long
    # A copy whose pods have not started this long after it could is re-placed (None: never).
    start_timeout_s: float | None = 900.0
    pull_back: bool = True
    pull_back_after_s: float = 0.0  # a copy younger than this is not pulled back (hysteresis)
    gc_grace_s: float = 60.0
    burst_enabled: bool = True
    min_pending_gpus: int = 0  # below this many waiting GPUs, every job stays (policy file)
    # How many hours of observation a pool's prior preemption rate is worth (policy file:
    # `prices.prior_weight`, 24 h by default), as the offers builder weighs it.
    preemption_prior_strength_h: float = 24.0
    # Cloud clusters that take no new placement (`clusters[].draining`); their jobs run on.
    draining_clusters: frozenset[str] = frozenset()
    # The on-prem namespaces whose Jobs the on-prem observer watches (fixed at start; None:
    # every namespace). A cloud copy in another namespace has a source nobody sees, so its
    # absence from the on-prem view proves nothing and the copy is never collected.
    watched_namespaces: frozenset[str] | None = None

    def lost_after_s(self, cluster: str) -> float:
        """How long `cluster` may be out of reach before its jobs are placed elsewhere."""
        return self.lost_cluster_timeout_s.get(cluster, self.default_lost_cluster_timeout_s)
