"""`federator sandbox up|down|status`: the local multi-cluster sandbox tests and demos run on."""

from __future__ import annotations

import argparse
import time

from federator import errors
from federator.commands.output import literal, new_console

DESCRIPTION = """\
Run a sandbox of real components on this machine, all bound to 127.0.0.1:

  clusters   onprem (https://127.0.0.1:16443), cloud-a (:16444), cloud-b (:16445): each with
             etcd, kube-apiserver, kube-controller-manager, kube-scheduler and KWOK fake GPU nodes
  kueue      the Kueue controller on onprem, with ClusterQueue `onprem` and LocalQueues
             team-a / team-b
  s3         onprem http://127.0.0.1:18310 and cloud-a :18320 (SeaweedFS),
             cloud-b :18330 (versitygw)

`up` builds missing programs (scripts/sandbox/build.sh, cached outside the repo by version),
starts what is not running, reuses what is, and writes .sandbox/kubeconfig (contexts onprem,
cloud-a, cloud-b), .sandbox/s3.json and .sandbox/credentials/. Logs: .sandbox/logs/.
`down` stops every process by PID and checks no port stays bound. `status` shows what runs.

examples:
  federator sandbox up
  federator sandbox up --only s3
  kubectl --kubeconfig .sandbox/kubeconfig --context cloud-a get nodes -L federator.io/pool
  federator sandbox down
"""

PARTS = ("s3", "clusters", "kueue")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "sandbox",
        help="start, stop or inspect the local sandbox (clusters, Kueue, KWOK, S3)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(title="actions", metavar="ACTION", dest="action")
    up = actions.add_parser(
        "up",
        help="build what is missing and start what is not running (idempotent)",
        description="Build missing programs, start every stopped component, wait until each "
        "is ready, and write .sandbox/kubeconfig and .sandbox/s3.json.",
    )
    up.add_argument(
        "--only",
        action="append",
        choices=PARTS,
        metavar="PART",
        help=f"bring up only these parts (repeatable; one of {', '.join(PARTS)}; "
        "kueue implies clusters)",
    )
    up.add_argument(
        "--no-build",
        action="store_true",
        help="fail instead of building programs that are missing from the cache",
    )
    actions.add_parser(
        "down",
        help="stop every sandbox process by PID and check no port stays bound",
        description="Stop every recorded process (SIGTERM, wait, SIGKILL) and verify that "
        "none of the sandbox's ports is still listening.",
    )
    actions.add_parser(
        "status",
        help="show each component: PID, running, memory, listening ports",
        description="Show each sandbox component with its PID, whether it runs, its memory "
        "and the ports it listens on. Exits 0 when every component runs, 3 otherwise.",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    action = getattr(args, "action", None)
    if action == "up":
        return _up(args)
    if action == "down":
        return _down()
    if action == "status":
        return _status()
    raise errors.UserError("federator sandbox: say what to do: up, down or status (see --help)")


def _up(args: argparse.Namespace) -> int:
    from federator import sandbox
    from federator.sandbox import ComponentFailed, binaries
    from federator.sandbox.orchestrator import needed_builds

    console = new_console(stderr=True, highlight=False)
    started = time.monotonic()

    def report(message: str) -> None:
        console.print(f"[dim]{time.monotonic() - started:6.1f}s[/dim] {literal(message)}")

    parts = frozenset(args.only or PARTS)
    missing = binaries.missing(needed_builds(parts | ({"clusters"} if "kueue" in parts else set())))
    if missing and args.no_build:
        report(f"not built (--no-build): {', '.join(missing)}")
    try:
        env = sandbox.up(parts=parts, report=report, build=not args.no_build)
    except binaries.BuildFailed as error:
        console.print(f"[red]sandbox build failed:[/red] {literal(error)}")
        return 1
    except ComponentFailed as error:
        console.print(f"[red]sandbox up failed[/red]: {literal(error)}")
        return 1
    if env.kubeconfig.exists():
        console.print(f"kubeconfig: {literal(env.kubeconfig)} (contexts onprem, cloud-a, cloud-b)")
    console.print(f"s3 stores:  {literal(env.root / 's3.json')}")
    return 0


def _down() -> int:
    from federator.sandbox import Sandbox

    console = new_console(stderr=True, highlight=False)
    result = Sandbox(report=lambda message: console.print(message, markup=False)).down()
    names = ", ".join(result.components) or "-"
    console.print(f"stopped {len(result.components)} process(es): {literal(names)}")
    if result.leftover_ports:
        ports = ", ".join(f"{n} ({p})" for n, p in sorted(result.leftover_ports.items()))
        console.print(f"[red]still listening[/red]: {literal(ports)}")
        return 1
    console.print("no sandbox port is listening")
    return 0


def _status() -> int:
    from rich.table import Table
    from rich.text import Text

    from federator.sandbox import Sandbox

    rows = Sandbox().status()
    table = Table(title="federator sandbox")
    for column in ("component", "pid", "state", "memory", "ports listening"):
        table.add_column(column)
    total = 0
    for row in rows:
        total += row.rss_bytes
        table.add_row(
            Text(row.key),
            str(row.pid or "-"),
            "[green]running[/green]" if row.running else "[red]stopped[/red]",
            f"{row.rss_bytes / 2**20:.0f} MiB" if row.running else "-",
            _ports(row.ports, row.listening),
        )
    console = new_console()
    console.print(table)
    running = sum(r.running for r in rows)
    console.print(f"{running}/{len(rows)} running, {total / 2**20:.0f} MiB resident in total")
    console.print("logs: .sandbox/logs/<site>-<component>.log")
    return 0 if running == len(rows) else 3


def _ports(owned: tuple[int, ...], listening: tuple[int, ...]) -> str:
    """The main port, how many more listen, and any that should but do not."""
    if not listening:
        return "-"
    text = str(owned[0]) if owned[0] in listening else f"[red]{owned[0]} not listening[/red]"
    others = len(set(listening) - {owned[0]})
    if others:
        text += f" (+{others})"
    missing = len(set(owned) - set(listening))
    if missing and owned[0] in listening:
        text += f" [red]{missing} missing[/red]"
    return text
