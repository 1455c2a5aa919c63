"""`federator status` piped (the tour's `federator status > file`): no line ends in blanks.

On the sandbox every section title with a table ('bursted jobs: 4', 'spend (USD)', 'blocked
pools: 1') was padded with spaces to the table's width (up to 120 trailing blanks), because the
title was the rich table's own title line.
"""

from __future__ import annotations

from pathlib import Path

from federator import policy
from federator.federation.blocks import BlockCause, PoolBlock, PoolBlocks
from tests.support import configs
from tests.unit.test_cli_status import BLOCKS, JOBS, NOW, configmap, fleet_of, job, placed, shown


def test_section_titles_over_tables_carry_no_trailing_blanks(tmp_path: Path) -> None:
    config = policy.load_policy(configs.offline_sandbox_policy(tmp_path))
    blocks = PoolBlocks(
        {("cloud-a", "a100-spot"): PoolBlock(NOW + 720, BlockCause.PREEMPTION, "team-a/train")}
    )
    fleet = fleet_of(
        config,
        {
            JOBS: {"items": [job("train-with-a-long-name-0", "team-a", placed(), "Running")]},
            BLOCKS: configmap("blocks.json", blocks.to_json()),
        },
    )
    text = shown(fleet)
    lines = text.splitlines()
    for title in ("bursted jobs: 1", "spend (USD)", "blocked pools: 1"):
        assert title in lines, f"{title!r} is not a line of its own"
    assert [line for line in lines if line != line.rstrip()] == []
