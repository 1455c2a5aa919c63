"""Who owns which jobs, where each tenant may run, and which data must never leave on-prem.

A tenant is a set of namespaces with an allowed list of clouds and regions and an optional
monthly budget. A residency rule pins a dataset on-prem: it is never replicated to a cloud,
and a job that reads it stays on-prem whatever the cost model prefers.
"""

from __future__ import annotations

from pydantic import Field

from federator.policy.base import KubeName, Name, NonNegative, Section


class Tenant(Section):
    """A team or project: the namespaces it owns and what its jobs may do."""

    name: Name
    """Unique tenant name, e.g. `team-a`; used in metrics and budget reports."""

    namespaces: tuple[KubeName, ...] = Field(min_length=1)
    """Namespaces whose jobs belong to this tenant."""

    allowed_clusters: tuple[Name, ...] | None = None
    """Cloud clusters this tenant's jobs may burst to; every cloud cluster when omitted,
    none when empty (the tenant never bursts)."""

    allowed_regions: tuple[str, ...] | None = None
    """Regions this tenant's jobs may run in; every region when omitted."""

    budget_usd_per_month: NonNegative | None = None
    """Most cloud spend of this tenant per calendar month, in US dollars; no cap when omitted."""


class ResidencyRule(Section):
    """Keeps a dataset on-prem: it is never copied to a cloud store, and a job that reads it
    never leaves on-prem, whatever the cost model prefers."""

    dataset: Name
    """Name of the dataset (from `datasets`)."""

    reason: str = ""
    """Why the rule exists (e.g. "patient data, GDPR"); shown in the reason of every job the
    rule keeps on-prem ("dataset patient-ct must stay on-prem (patient data, GDPR)")."""
