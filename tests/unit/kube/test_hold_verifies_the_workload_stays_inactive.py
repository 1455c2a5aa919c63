"""The hold's verify checks that the Workload is still inactive, not only unreserved.

A Workload reactivated between our deactivation and the verify (a second writer returning the
job on-prem, or a person) was taken as held: the copy was created while Kueue could admit the
job on-prem. It is now a `Conflict`, tried again next pass on fresh data (the record stays
`placing`), as for a Workload that changed before our deactivation.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from federator.kube import errors as kube_errors
from federator.kube.onprem import OnPremCluster
from tests.unit.kube.test_hold_on_prem_conflict import WORKLOAD, Apiserver, job


class ReactivatedRightAfterOurDeactivation(Apiserver):
    async def request(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        answer = await super().request(method, path, **kw)
        if method == "PATCH" and path == WORKLOAD:
            stored = self.objects[WORKLOAD]
            stored["spec"]["active"] = True
            stored["metadata"]["resourceVersion"] = "3"
        return answer


def test_a_workload_reactivated_before_the_verify_is_not_taken_as_held() -> None:
    api = ReactivatedRightAfterOurDeactivation(workload_version="1")
    with pytest.raises(kube_errors.Conflict, match="reactivated"):
        asyncio.run(OnPremCluster(api).hold_on_prem(job()))


def test_a_workload_that_stays_inactive_is_held() -> None:
    api = Apiserver(workload_version="1")
    assert asyncio.run(OnPremCluster(api).hold_on_prem(job())) is True
