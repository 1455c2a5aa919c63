"""Federation: move overflow jobs from the on-prem Kueue queue to cloud clusters and back.

The loop (`federation.Federation`) reaches clusters only through the ports in `ports.py`;
`federator.kube` implements them. See docs/design.md for the mechanisms and the races.
"""

from __future__ import annotations

from federator.federation.federation import Federation, FederationSettings, PassReport

__all__ = ["Federation", "FederationSettings", "PassReport"]
