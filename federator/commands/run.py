"""`federator run`: the daemon."""

from __future__ import annotations

import argparse
import asyncio
import errno

from federator.commands.options import add_policy_file_option

DESCRIPTION = """\
Run federator as a long-running daemon: observe the on-prem queue and every cloud cluster,
decide with the cost model, burst the jobs worth moving, mirror their status, recover from
spot preemptions, sync data, and clean up what it created.

Every replica observes and serves /metrics, /healthz, /readyz and /debug/decisions; only the
holder of the leader Lease writes. SIGTERM stops it gracefully (within 25 s); SIGHUP, or a
change of the policy file, reloads the policy (an invalid file is rejected and the old policy
stays in force).

examples:
  federator run --config config/sandbox.yaml
  federator run --config config/sandbox.yaml --dry-run     # decide and explain, write nothing
  federator run --config /etc/federator/policy/federator.yaml --once # one pass, e.g. from a CronJob
  federator run --config config/sandbox.yaml --log-level debug

The daemon rides out clusters that are down: it keeps trying them, and serves meanwhile.
--once tries the on-prem apiserver first (3 tries over 5 s) and stops at once (exit 2) if it
refuses the connection, its name does not resolve, or it refuses the credentials; a slow
apiserver gets up to 60 s for the caches to fill, then the pass ends with exit 1 (it may pass).

Logs are structured (JSON when stdout is not a terminal), one line per decision.
"""

LOG_LEVELS = ("debug", "info", "warning", "error")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the daemon (observe, decide, burst, mirror, sync, clean up)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_policy_file_option(parser, "the policy file (YAML)")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="decide and explain every decision, but write nothing to any cluster or store",
    )
    parser.add_argument(
        "--once", action="store_true", help="one full pass, then exit (non-zero if a step failed)"
    )
    parser.add_argument(
        "--log-level",
        default="info",
        type=str.lower,
        choices=LOG_LEVELS,
        metavar="LEVEL",
        help=f"least severe log lines to print: {', '.join(LOG_LEVELS)} (default: info)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from federator.errors import UserError

    try:
        return asyncio.run(_run(args))
    except OSError as error:
        # The one socket the daemon binds is its HTTP server's: taken, it is most often a
        # second `federator run` of the same file, a mistake to name, not a traceback.
        if error.errno != errno.EADDRINUSE:
            raise
        raise UserError(
            f"{args.config}: server: {error.strerror}; another federator run (or another "
            "program) listens there: stop it, or choose another server.port"
        ) from None


async def _run(args: argparse.Namespace) -> int:
    from federator import daemon
    from federator.commands.reachability import stop_unless_onprem_answers

    if args.once:  # a person or a cron pass waits for this one; the daemon rides outages out
        await stop_unless_onprem_answers(args.config)
    return await daemon.run(
        args.config, dry_run=args.dry_run, once=args.once, log_level=args.log_level
    )
