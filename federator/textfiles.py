"""Reading the text files a person gives federator (traces, price catalogs, spot market files,
the policy file), with errors that name the line instead of a traceback.

Spreadsheets save "CSV UTF-8" with a byte-order mark, and a file from another tool may hold a
byte that is not UTF-8 or a CSV field past the csv module's 128 KiB limit; each reader met
these on its own before, so the rules live here once.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from federator import errors

if TYPE_CHECKING:
    from _csv import Reader as CsvReader


def line_and_column(text: bytes | str, offset: int) -> tuple[int, int]:
    """The line and column (both from 1) of a byte or character offset into `text`."""
    if isinstance(text, bytes):
        lines, line_start = text.count(b"\n", 0, offset), text.rfind(b"\n", 0, offset) + 1
    else:
        lines, line_start = text.count("\n", 0, offset), text.rfind("\n", 0, offset) + 1
    return lines + 1, offset - line_start + 1


def read_utf8(path: Path, what: str) -> str:
    """The text of an input file, UTF-8 with or without the byte-order mark spreadsheets
    write; a `UserError` naming the file (and the line of a byte that is not UTF-8)."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise errors.UserError(f"{path}: cannot read the {what}: {error.strerror}") from error
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line, column = line_and_column(data, error.start)
        raise errors.UserError(
            f"{path}:{line}: the {what} is not UTF-8 text "
            f"(byte 0x{data[error.start]:02x} at column {column}: {error.reason}); "
            "save it as UTF-8"
        ) from None


def numbered_rows(reader: CsvReader, where: object, row: str) -> Iterator[tuple[int, list[str]]]:
    """Each CSV row with the line it starts on, the header's being 1 (a quoted field may hold
    line breaks, so a row may span lines); a row the csv module cannot read (a field over its
    limit) is a `UserError`: "`where`:LINE: cannot read `row`: why"."""
    line = 1
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise errors.UserError(f"{where}:{line}: cannot read {row}: {error}") from None
        yield line, values
        line = reader.line_num + 1  # the lines read so far, the last row's included
