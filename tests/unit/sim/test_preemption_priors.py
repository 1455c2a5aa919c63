"""The simulated pools carry the daemon's preemption prior, read by the same function: the
Spot Advisor's bucket from `prices.interruption_data` included (the simulator once skipped it
and used the default rate where `federator prices` showed the advisor's)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from federator import errors
from federator.policy import FederatorConfig, parse_policy
from federator.prices.live import offer_builder
from federator.sim.setup import WorldOptions, build_world
from federator.sim.traces import TraceJob
from tests.support.configs import sandbox_config

TRACE = (TraceJob("1", 0.0, 1, 60.0), TraceJob("2", 10.0, 1, 60.0))


def sandbox_policy(edit: Any = None) -> FederatorConfig:
    """config/sandbox.yaml (paths made absolute by `tests.support.configs`), edited."""
    document = sandbox_config()
    if edit is not None:
        edit(document)
    return parse_policy(yaml.safe_dump(document), "test.yaml")


def test_every_simulated_pool_has_the_rate_the_daemons_offers_show() -> None:
    config = sandbox_policy()
    offers = offer_builder(config, live_aws=False).build(0.0)
    daemon = {row.key: row.preemption.rate_per_hour for row in offers.rows}
    simulated = build_world(config, TRACE, WorldOptions(onprem_gpus=8)).scenario.pools

    rates = {f"{pool.cluster}/{pool.pool}": pool.preemption_rate_per_hour for pool in simulated}

    assert rates == pytest.approx(daemon)
    advised = rates["cloud-a/a100-spot"]  # the advisor's p4d bucket, not the 0.1/h default
    assert advised == pytest.approx(0.000183, rel=0.01)
    assert advised != config.prices.default_spot_preemption_rate_per_hour


def test_an_unreadable_advisor_file_names_its_field(tmp_path: Path) -> None:
    broken = tmp_path / "advisor.json"
    broken.write_text("not json\n")

    def edit(document: dict[str, Any]) -> None:
        document["prices"]["interruption_data"] = str(broken)

    with pytest.raises(errors.UserError, match=r"^prices.interruption_data: .*advisor.json:1:1"):
        build_world(sandbox_policy(edit), TRACE, WorldOptions(onprem_gpus=8))
