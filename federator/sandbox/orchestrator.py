"""Bring the sandbox up, take it down, say what runs: the one place that orders the pieces.

`up` is idempotent: a component whose recorded process is alive and answers its readiness
probe is reused, a dead or unhealthy one is (re)started, and every configuration step after
start (buckets, nodes, Kueue objects) is an idempotent create-or-apply. Components of
different sites start concurrently; apiservers start one at a time because on two cores they
otherwise starve each other. A lock file serialises concurrent `up`/`down` calls (for example
`make test` and a pytest fixture).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import shutil
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from federator.sandbox import s3stores
from federator.sandbox.env import SandboxEnv, load_env
from federator.sandbox.layout import GRPC_OFFSET, PORTS, SITES, Layout, all_ports
from federator.sandbox.probes import ComponentFailed, Probe, wait_ready
from federator.sandbox.supervisor import (
    ProcessSpec,
    Running,
    StateFile,
    is_alive,
    listening_ports,
    port_holders,
    start,
    stop,
    stop_all,
)

Report = Callable[[str], None]

PART_S3 = "s3"
PART_CLUSTERS = "clusters"
PART_KUEUE = "kueue"
ALL_PARTS = frozenset({PART_S3, PART_CLUSTERS, PART_KUEUE})
REUSE_PROBE_TIMEOUT_S = 15.0
PORT_RELEASE_GRACE_S = 10.0


def needed_builds(parts: frozenset[str]) -> list[str]:
    """The build.sh components that `parts` run on (versitygw only serves cloud-b's S3)."""
    needed = []
    if PART_S3 in parts:
        needed.append("versitygw")
    if PART_CLUSTERS in parts or PART_KUEUE in parts:
        needed += ["etcd", "k8s", "kubectl", "kwok"]
    if PART_KUEUE in parts:
        needed.append("kueue")
    return needed


@dataclass(frozen=True, slots=True)
class Component:
    """One supervised server: how to run it, how to tell it is ready, which ports it owns."""

    site: str
    name: str
    part: str
    spec: Callable[[], ProcessSpec]
    probe: Callable[[], Probe]
    ports: tuple[int, ...]
    timeout_s: float
    configure: Callable[[], Awaitable[None]] | None = None

    @property
    def key(self) -> str:
        return f"{self.site}/{self.name}"


@dataclass(frozen=True, slots=True)
class Stopped:
    """What `down` did: the components it stopped and any sandbox port still listening."""

    components: tuple[str, ...]
    leftover_ports: dict[str, int]


@dataclass(frozen=True, slots=True)
class ComponentStatus:
    """One row of `federator sandbox status`."""

    key: str
    pid: int | None
    running: bool
    rss_bytes: int
    ports: tuple[int, ...]
    listening: tuple[int, ...]
    log: str


class Sandbox:
    """The sandbox under one `.sandbox/` directory."""

    def __init__(self, layout: Layout | None = None, report: Report | None = None) -> None:
        self.layout = layout or Layout.default()
        self.report: Report = report or (lambda _message: None)
        self.state = StateFile(self.layout.state_json)
        self._stores: dict[str, s3stores.Store] | None = None

    # ---- components ------------------------------------------------------------------------

    def stores(self, *, create_credentials: bool = True) -> dict[str, s3stores.Store]:
        """The three stores; `create_credentials=False` (for `status`, which writes nothing)
        leaves a store that was never started without keys instead of making them."""
        if self._stores is not None:
            return self._stores
        running = self.state.load()
        stores = {}
        for site in SITES:
            recorded = running.get(f"{site}/s3")
            if recorded is not None and is_alive(recorded):
                implementation = s3stores.implementation_of(recorded.program)
            else:
                implementation = s3stores.choose_implementation(site)
            if create_credentials:
                creds = s3stores.load_or_create_credentials(self.layout, site)
            else:
                creds = s3stores.load_credentials(self.layout, site) or s3stores.NO_CREDENTIALS
            stores[site] = s3stores.Store(site, implementation, creds)
        if create_credentials:
            self._stores = stores
        return stores

    def s3_components(self, *, create_credentials: bool = True) -> list[Component]:
        stores = self.stores(create_credentials=create_credentials)
        return [_s3_component(self.layout, store) for store in stores.values()]

    def cluster_components(self) -> list[Component]:
        from federator.sandbox.clusters import Clusters

        return Clusters(self.layout, self.report).components()

    def kueue_components(self) -> list[Component]:
        from federator.sandbox.kueue import Kueue

        return Kueue(self.layout, self.report).components()

    def components(
        self, parts: frozenset[str] = ALL_PARTS, *, create_credentials: bool = True
    ) -> list[Component]:
        found: list[Component] = []
        if PART_S3 in parts:
            found += self.s3_components(create_credentials=create_credentials)
        if PART_CLUSTERS in parts:
            found += self.cluster_components()
        if PART_KUEUE in parts:
            found += self.kueue_components()
        return found

    def component(self, site: str, name: str) -> Component:
        for component in self.components():
            if component.site == site and component.name == name:
                return component
        known = ", ".join(c.key for c in self.components())
        raise KeyError(f"no sandbox component {site}/{name}; known: {known}")

    # ---- up --------------------------------------------------------------------------------

    async def up(self, parts: frozenset[str] = ALL_PARTS) -> SandboxEnv:
        started = time.monotonic()
        with self._locked():
            self.layout.root.mkdir(parents=True, exist_ok=True)
            s3stores.write_s3_json(self.layout, list(self.stores().values()))
            tasks: list[Awaitable[None]] = []
            if PART_S3 in parts:
                tasks.append(self._up_s3())
            if PART_CLUSTERS in parts or PART_KUEUE in parts:
                from federator.sandbox.clusters import Clusters

                clusters = Clusters(self.layout, self.report)
                tasks.append(clusters.up(self, with_kueue=PART_KUEUE in parts))
            await _gather_or_fail(tasks)
        self.report(f"sandbox is up ({time.monotonic() - started:.1f} s)")
        return load_env(self.layout.root, need_clusters=PART_CLUSTERS in parts)

    async def _up_s3(self) -> None:
        await _gather_or_fail([self.ensure(c) for c in self.s3_components()])

    async def ensure(self, component: Component, start_turn: asyncio.Lock | None = None) -> None:
        """Reuse `component` if it runs and answers, else (re)start it; then configure it.

        A (re)start waits for `start_turn` when given, so heavy servers start one at a time.
        """
        recorded = self.state.load().get(component.key)
        if (
            recorded is not None
            and is_alive(recorded)
            and not await self._restarted_if_changed(component, recorded)
        ):
            try:
                await wait_ready(
                    component.key,
                    component.probe(),
                    running=recorded,
                    timeout_s=REUSE_PROBE_TIMEOUT_S,
                )
            except ComponentFailed:
                self.report(f"{component.key}: running but not answering; restarting")
                await asyncio.to_thread(stop, recorded)
            else:
                self.report(f"{component.key}: already running (pid {recorded.pid})")
                if component.configure is not None:
                    await component.configure()
                return
        if start_turn is None:
            await self._start(component)
            return
        async with start_turn:
            await self._start(component)

    async def _restarted_if_changed(self, component: Component, recorded: Running) -> bool:
        """Stop `recorded` and say True if it runs an older command line than `component`."""
        try:
            fingerprint = component.spec().fingerprint
        except FileNotFoundError:
            return False
        if not recorded.fingerprint or fingerprint == recorded.fingerprint:
            return False
        self.report(f"{component.key}: command line changed since it started; restarting")
        await asyncio.to_thread(stop, recorded)
        return True

    async def _start(self, component: Component) -> None:
        await self._wait_for_free_ports(component)
        try:
            spec = component.spec()
            running = start(spec)
        except FileNotFoundError as error:
            raise ComponentFailed(
                component.key,
                f"cannot start: {error} (build it with scripts/sandbox/build.sh)",
                None,
            ) from None
        self.state.put(running)
        self.report(f"{component.key}: started (pid {running.pid}), waiting until ready")
        took = await wait_ready(
            component.key, component.probe(), running=running, timeout_s=component.timeout_s
        )
        self.report(f"{component.key}: ready in {took:.1f} s")
        if component.configure is not None:
            await component.configure()

    async def _wait_for_free_ports(self, component: Component) -> None:
        """Fail if another process holds one of our ports (after a grace for one just stopped)."""
        names = {f"port {port}": port for port in component.ports}
        deadline = time.monotonic() + PORT_RELEASE_GRACE_S
        taken = listening_ports(names)
        while taken and time.monotonic() < deadline:
            await asyncio.sleep(0.25)
            taken = listening_ports(names)
        if taken:
            holders = port_holders(list(taken.values()))
            who = "; ".join(f"{port} held by {holder}" for port, holder in sorted(holders.items()))
            raise ComponentFailed(
                component.key,
                f"cannot start: {who or 'port(s) in use'}. This sandbox did not start that "
                "process (another checkout's sandbox? run `federator sandbox down` there) or "
                "another tool uses the port; free it and run `up` again",
                None,
            )

    # ---- single components (for reliability tests) ------------------------------------------

    async def start_component(self, site: str, name: str) -> None:
        """Start one stopped component again and wait until it is ready."""
        component = self.component(site, name)
        with self._locked():
            await self.ensure(component)
            if name == "s3":
                s3stores.write_s3_json(self.layout, list(self.stores().values()))

    def stop_component(self, site: str, name: str, *, kill: bool = False) -> bool:
        """Stop one component (SIGKILL at once when `kill`); True if it was running."""
        key = f"{site}/{name}"
        self.component(site, name)  # validates the name
        with self._locked():
            recorded = self.state.load().get(key)
            if recorded is None:
                return False
            stopped = stop(recorded, grace_s=0.0 if kill else 10.0)
            self.state.drop(key)
            return stopped

    # ---- down / status ---------------------------------------------------------------------

    def down(self) -> Stopped:
        """Stop every recorded process (Kueue and KWOK first, etcd and S3 last).

        The ports still listening are checked before the lock is released, so a concurrent
        `up` cannot make a clean `down` look dirty.
        """
        with self._locked():
            entries = self.state.load()
            stopped: list[str] = []
            for wave in _shutdown_waves(list(entries.values())):
                began = time.monotonic()
                names = stop_all(wave)
                if names:
                    took = time.monotonic() - began
                    self.report(f"stopped {', '.join(names)} ({took:.1f} s)")
                stopped += names
            self.state.save({})
            if self.layout.shm_dir.exists():
                shutil.rmtree(self.layout.shm_dir, ignore_errors=True)
            return Stopped(tuple(stopped), self.leftover_ports())

    def leftover_ports(self) -> dict[str, int]:
        return listening_ports(all_ports())

    def status(self) -> list[ComponentStatus]:
        recorded = self.state.load()
        rows = []
        for component in self.components(create_credentials=False):
            entry = recorded.get(component.key)
            alive = entry is not None and is_alive(entry)
            listening = listening_ports({str(p): p for p in component.ports})
            rows.append(
                ComponentStatus(
                    key=component.key,
                    pid=entry.pid if entry is not None else None,
                    running=alive,
                    rss_bytes=rss_bytes(entry.pid) if entry is not None and alive else 0,
                    ports=component.ports,
                    listening=tuple(sorted(listening.values())),
                    log=str(self.layout.log_file(component.site, component.name)),
                )
            )
        return rows

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.layout.root.mkdir(parents=True, exist_ok=True)
        with (self.layout.root / "lock").open("w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self.report("another `sandbox up/down` is running; waiting for it to finish")
                fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _s3_component(layout: Layout, store: s3stores.Store) -> Component:
    ports = PORTS[store.name]
    owned = [ports.s3]
    if store.implementation == s3stores.SEAWEEDFS:
        owned += list(ports.s3_internal.values())
        owned += [p + GRPC_OFFSET for p in owned]

    def probe() -> Probe:
        async def buckets_ready() -> bool:
            return await asyncio.to_thread(s3stores.ensure_buckets, store)

        return buckets_ready

    return Component(
        site=store.name,
        name="s3",
        part=PART_S3,
        spec=lambda: s3stores.process_spec(layout, store),
        probe=probe,
        ports=tuple(owned),
        timeout_s=60.0,
    )


_SHUTDOWN_ORDER = ("kueue", "kwok", "scheduler", "controller-manager", "apiserver", "etcd", "s3")


def _shutdown_waves(entries: list[Running]) -> list[list[Running]]:
    """Group processes so clients stop before the servers they talk to."""
    waves: list[list[Running]] = [[] for _ in _SHUTDOWN_ORDER]
    other: list[Running] = []
    for entry in entries:
        name = entry.key.split("/", 1)[1]
        if name in _SHUTDOWN_ORDER:
            waves[_SHUTDOWN_ORDER.index(name)].append(entry)
        else:
            other.append(entry)
    return [wave for wave in [other, *waves] if wave]


def rss_bytes(pid: int) -> int:
    """Resident memory of `pid` (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return 0
    return 0


async def _gather_or_fail(tasks: Sequence[Awaitable[None]]) -> None:
    """Run `tasks` concurrently; on the first failure cancel the rest and re-raise it."""
    running = [asyncio.ensure_future(t) for t in tasks]
    try:
        await asyncio.gather(*running)
    except BaseException:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        raise
