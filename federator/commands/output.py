"""What the commands' tables need to read well outside a terminal."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table


def wide_enough(console: Console, table: Table) -> Console:
    """Piped or redirected, rich would squeeze a table to 80 columns and fold its cells
    mid-word; a console as wide as the table needs instead (the same one on a terminal)."""
    from rich.measure import Measurement

    if console.is_terminal:
        return console
    width = Measurement.get(console, console.options.update_width(10_000), table).maximum
    return type(console)(width=max(console.width, width), file=console.file)
