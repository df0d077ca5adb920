"""Reading an uploaded spreadsheet: XLSX, or CSV in whatever encoding and delimiter a
spreadsheet or a shop platform wrote it, one row at a time (memory does not grow with the
file).

CSV: a UTF-8 (or UTF-16) byte-order mark decides the encoding; otherwise the text is read as
UTF-8, and bytes that are not UTF-8 are read as Windows-1252 (what a French Excel on Windows
writes), so a file in either, or a UTF-8 file with a stray Windows-1252 byte, reads as its
author saw it. The delimiter is the one of `,` `;` tab `|` that splits the first lines into
the most columns, most consistently. Quoted cells may hold delimiters, quotes and newlines.
"""

import codecs
import csv
import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time

from django.utils.translation import gettext as _

DELIMITERS = (",", ";", "\t", "|")
SNIFF_BYTES = 256 * 1024
# A cell may hold a long note; a runaway quote must not read the whole file into one cell.
MAX_CELL = 64 * 1024
MAX_COLUMNS = 500
# An XLSX is a zip: refuse one that inflates far beyond any real spreadsheet (a zip bomb).
MAX_XLSX_RATIO = 100
MAX_XLSX_INFLATED = 4 * 1024**3

_FALLBACK = "imports-cp1252"


def _cp1252_fallback(error: UnicodeDecodeError):
    """Read bytes that are not UTF-8 as Windows-1252 (Latin-1 for its 5 unused bytes)."""
    bad = error.object[error.start : error.end]
    return bad.decode("cp1252", errors="ignore") or bad.decode("latin-1"), error.end


codecs.register_error(_FALLBACK, _cp1252_fallback)
csv.field_size_limit(MAX_CELL)


class UnreadableFile(Exception):
    """The file is no spreadsheet we can read; the message says why, for the user."""


@dataclass(frozen=True)
class Broken:
    """A row that cannot be read as cells (its reason, for the user)."""

    reason: str
    detail: str = ""


@dataclass(frozen=True)
class Layout:
    """How a file is read: "xlsx", or a CSV's encoding and delimiter."""

    encoding: str
    delimiter: str = ""

    @property
    def is_xlsx(self) -> bool:
        return self.encoding == "xlsx"


def _encoding_of(head: bytes) -> str:
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return "cp1252"
    return "utf-8"


def _text_stream(binary, encoding: str) -> io.TextIOWrapper:
    errors = _FALLBACK if encoding in ("utf-8", "utf-8-sig") else "replace"
    if encoding == "cp1252":
        # Windows-1252 leaves 5 bytes undefined; read those as Latin-1 rather than fail.
        encoding, errors = "utf-8", _FALLBACK
    return io.TextIOWrapper(binary, encoding=encoding, errors=errors, newline="")


def _delimiter_of(sample: str) -> str:
    lines = sample.splitlines(keepends=True)
    if len(lines) > 1:
        lines = lines[:-1]  # the sample may end in the middle of a line
    text = "".join(lines[:50])

    def score(delimiter):
        try:
            rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
        except csv.Error:
            return (0, 0)
        rows = [r for r in rows if any(cell.strip() for cell in r)]
        if not rows or len(rows[0]) < 2:
            return (0, 0)
        width = len(rows[0])
        consistent = sum(1 for r in rows if len(r) == width) / len(rows)
        return (round(consistent, 1), width)

    best = max(DELIMITERS, key=score)
    return best if score(best) > (0, 0) else ","


def sniff(binary) -> Layout:
    """How to read the file (`binary`: an open binary file, left at its start)."""
    head = binary.read(SNIFF_BYTES)
    binary.seek(0)
    if not head.strip():
        raise UnreadableFile(_("The file is empty."))
    if head.startswith(b"PK\x03\x04"):
        return Layout("xlsx")
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise UnreadableFile(
            _(
                "This is an old Excel file (.xls). Save it as .xlsx or CSV in your "
                "spreadsheet and upload that."
            )
        )
    encoding = _encoding_of(head)
    controls = sum(head.count(bytes([c])) for c in (*range(0, 9), *range(14, 32)))
    if encoding != "utf-16" and controls > len(head) // 100:
        raise UnreadableFile(_("This is not a spreadsheet file (CSV or XLSX)."))
    if encoding == "utf-16":
        sample = head.decode("utf-16", errors="ignore")
    else:
        sample = head.decode("utf-8", errors=_FALLBACK)
    sample = sample.lstrip("\ufeff")
    return Layout(encoding, _delimiter_of(sample))


def _cell(value) -> str | datetime | date:
    """An XLSX cell as text, or as the date it holds."""
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value
    if isinstance(value, time):
        return value.isoformat()
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def _xlsx_rows(binary) -> Iterator[tuple[int, list]]:
    try:
        archive = zipfile.ZipFile(binary)
        members = archive.infolist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        raise UnreadableFile(_("The XLSX file is damaged (it is not a valid zip).")) from None
    inflated = sum(m.file_size for m in members)
    packed = max(1, sum(m.compress_size for m in members))
    if inflated > MAX_XLSX_INFLATED or inflated / packed > MAX_XLSX_RATIO * 10:
        raise UnreadableFile(_("The XLSX file expands to far more than a spreadsheet holds."))
    binary.seek(0)
    from openpyxl import load_workbook  # imported here: only XLSX files need it

    try:
        book = load_workbook(binary, read_only=True, data_only=True)
        sheet = book.worksheets[0]
    except Exception:  # openpyxl raises many kinds for a broken workbook
        raise UnreadableFile(_("The XLSX file could not be read (damaged or not Excel).")) from None
    try:
        for number, row in enumerate(sheet.iter_rows(values_only=True), start=1):
            cells = [_cell(v) for v in row[:MAX_COLUMNS]]
            while cells and cells[-1] == "":
                cells.pop()
            yield number, cells
    except UnreadableFile:
        raise
    except Exception:
        raise UnreadableFile(_("The XLSX file is damaged past this point.")) from None
    finally:
        book.close()


def _csv_rows(binary, layout: Layout) -> Iterator[tuple[int, list | Broken]]:
    stream = _text_stream(binary, layout.encoding)
    try:
        yield from _csv_reader(stream, layout)
    finally:
        stream.detach()  # leave the caller's file open


def _csv_reader(stream, layout: Layout) -> Iterator[tuple[int, list | Broken]]:
    reader = csv.reader(stream, delimiter=layout.delimiter, strict=False)
    line = 1
    while True:
        start = line
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            line = reader.line_num + 1
            message = str(error)
            if "field larger" in message:
                yield (
                    start,
                    Broken(
                        _(
                            "a cell is longer than %(limit)s characters (a quote opened "
                            "here may never be closed); the rest of the file was not read"
                        )
                        % {"limit": f"{MAX_CELL:,}"}
                    ),
                )
                return
            yield start, Broken(_("the line cannot be read as CSV"), message)
            continue
        except UnicodeDecodeError:
            yield start, Broken(_("the text of this line is not in a known encoding"))
            return
        line = reader.line_num + 1
        if row and row[0].startswith("\ufeff"):
            row[0] = row[0][1:]
        if any("\x00" in cell for cell in row):
            yield start, Broken(_("the line contains NUL characters"))
            continue
        yield start, row[: MAX_COLUMNS + 1]


def read_rows(binary, layout: Layout) -> Iterator[tuple[int, list | Broken]]:
    """(line, cells) for every row of the file, the header included; blank rows skipped."""
    rows = _xlsx_rows(binary) if layout.is_xlsx else _csv_rows(binary, layout)
    for line, row in rows:
        if isinstance(row, Broken) or any(
            cell.strip() if isinstance(cell, str) else True for cell in row
        ):
            yield line, row
