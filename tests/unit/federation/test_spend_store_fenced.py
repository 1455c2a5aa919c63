"""The spend book is written only through the federation's write fence.

`Federation.spend_store` had a setter, used by one test, that put a store in unfenced: a
follower (or a leader that lost its Lease mid-pass) could then have written the spend book.
The store now comes only through the constructor, which fences it like every other port."""

from __future__ import annotations

import pytest

from federator.core.policy import DecisionPolicy
from federator.federation import Federation, FederationSettings
from federator.federation.fencing import FencedSpendStore
from tests.unit.kube.fakes import FakeCloud, FakeOnPrem
from tests.unit.kube.test_federation_loop import Offers, Scripted, offer
from tests.unit.kube.test_spending import MemoryStore


def test_the_spend_store_is_fenced_and_cannot_be_swapped_for_an_unfenced_one() -> None:
    store = MemoryStore()
    fed = Federation(
        onprem=FakeOnPrem(), clouds={"cloud-a": FakeCloud("cloud-a")}, policy=DecisionPolicy(),
        offers=Offers([offer("cloud-a")]), settings=FederationSettings(interval_s=10),
        decide=Scripted(), spend_store=store,
    )  # fmt: skip
    assert isinstance(fed.spend_store, FencedSpendStore)
    with pytest.raises(AttributeError):
        fed.spend_store = MemoryStore()  # type: ignore[misc]
    assert isinstance(fed.spend_store, FencedSpendStore)
