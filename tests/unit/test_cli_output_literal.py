"""`output.literal`: text from outside put into a line of rich markup prints as itself.

rich reads `[...]` as a tag: unescaped, `shards/[train]/p0` printed as `shards//p0` and `[/x]`
raised MarkupError. rich's own `escape` doubles one trailing backslash (right before a tag,
two printed before plain text) and leaves two unchanged (one printed before a tag)."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from federator.commands.output import literal

VALUES = ["shards/[train]/p0", "a: [/x]", "x[bold]y", "C:\\dir\\[a]", "ends\\", "two\\\\", "[]"]


def printed(markup: str, *, terminal: bool) -> str:
    out = io.StringIO()
    console = Console(file=out, width=200, force_terminal=terminal, color_system=None)
    console.print(markup, highlight=False)
    return out.getvalue().removesuffix("\n")


@pytest.mark.parametrize("terminal", [False, True])
@pytest.mark.parametrize("value", VALUES)
def test_a_value_prints_as_itself_before_a_tag_and_before_text(value: str, terminal: bool) -> None:
    assert printed(f"[bold]{literal(value)}[/]: z", terminal=terminal) == f"{value}: z"
    assert printed(f"{literal(value)} z", terminal=terminal) == f"{value} z"
    assert printed(f"a [red]{literal(value)}", terminal=terminal) == f"a {value}"


@pytest.mark.parametrize("value", ["plain/key.tar", "team-a/job (1)", "[1, 2]", "a]b", ""])
def test_text_rich_would_not_read_as_markup_comes_back_unchanged(value: str) -> None:
    assert literal(value) == value
