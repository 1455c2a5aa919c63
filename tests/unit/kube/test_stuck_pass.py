"""A pass that hangs is named by where it waits (the `federation_pass_stuck` warning)."""

from __future__ import annotations

import asyncio

from federator.federation.federation import _await_chain


async def test_the_await_chain_names_every_coroutine_down_to_the_one_that_waits() -> None:
    never = asyncio.Event()

    async def read_the_cloud() -> None:
        await never.wait()

    async def run_once() -> None:
        await read_the_cloud()

    task = asyncio.create_task(run_once())
    await asyncio.sleep(0)
    chain = _await_chain(task)
    task.cancel()
    names = [entry.rsplit(" ", 1)[-1] for entry in chain]
    assert names[:3] == ["run_once", "read_the_cloud", "wait"]
    assert all(":" in entry for entry in chain)
