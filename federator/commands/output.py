"""What the commands' output needs: consoles that end like other tools when their reader goes
away, tables that read well outside a terminal, and text from outside that prints as itself."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table


def new_console(**options: Any) -> Console:
    """A rich console (`options` as rich takes them) whose closed pipe ends the command as
    SIGPIPE ends other tools: exit 141 from `cli.main`. Rich's own handling exits 1, so
    `federator prices | head -1` failed a `set -o pipefail` script."""
    return _pipe_console()(**options)


@functools.cache
def _pipe_console() -> type[Console]:
    from rich.console import Console

    class PipeConsole(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True  # nothing more to write; `cli.main` points stdout at /dev/null
            raise BrokenPipeError

    return PipeConsole


def wide_enough(console: Console, table: Table) -> Console:
    """Piped or redirected, rich would squeeze a table to 80 columns and fold its cells
    mid-word; a console as wide as the table needs instead (the same one on a terminal)."""
    from rich.measure import Measurement

    if console.is_terminal:
        return console
    width = Measurement.get(console, console.options.update_width(10_000), table).maximum
    return type(console)(width=max(console.width, width), file=console.file)


def literal(value: object) -> str:
    """`value` as rich markup that prints as itself, for text from outside (an S3 key, a store's
    error, a name from a policy file or a cluster) put into a line that has markup of ours.

    Unescaped, rich read `shards/[train]/p0` as a style tag and dropped `[train]`, and raised
    MarkupError (a traceback for the user) on `[/x]`. Text without brackets or a trailing
    backslash comes back unchanged, so lines without them print as they always did.
    """
    from rich.markup import escape

    text = str(value)
    body = text.rstrip("\\")
    trailing = len(text) - len(body)
    if not trailing:
        return escape(body)
    # Backslashes just before a tag escape it, so ours are doubled (2n print as n and leave the
    # next tag a tag); before plain text all 2n would print, so an empty style pair follows
    # them: it prints nothing, and the backslashes are always before a tag.
    return escape(body) + "\\" * (2 * trailing) + "[dim][/dim]"
