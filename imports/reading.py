"""Reading an uploaded spreadsheet: XLSX, or CSV in whatever encoding and delimiter a
spreadsheet or a shop platform wrote it, one row at a time (memory does not grow with the
file).

CSV: a UTF-8 (or UTF-16) byte-order mark decides the encoding; otherwise the text is read as
UTF-8, and bytes that are not UTF-8 are read as Windows-1252 (what a French Excel on Windows
writes), so a file in either, or a UTF-8 file with a stray Windows-1252 byte, reads as its
author saw it; a file that is not UTF-8 and whose accented letters are Mac Roman's (Excel for
Mac's plain CSV) is read as Mac Roman. The delimiter is the one of `,` `;` tab `|` that
splits the first lines into the most columns, most consistently. Quoted cells may hold
delimiters, quotes and newlines.
"""

import codecs
import collections
import csv
import functools
import io
import os
import re
import struct
import tempfile
import zipfile
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from xml.etree import ElementTree

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
    """A row that cannot be read as cells: its reason, for the user now (in the language
    of the request), and as a code and value of imports.rows.REASONS, worded when shown."""

    reason: str
    detail: str = ""
    code: str = ""
    value: str = ""


@dataclass(frozen=True)
class Layout:
    """How a file is read: "xlsx", or a CSV's encoding and delimiter."""

    encoding: str
    delimiter: str = ""

    @property
    def is_xlsx(self) -> bool:
        return self.encoding == "xlsx"


# A first line "sep=;" (written for Excel, which takes the delimiter from it and hides it).
_SEP_LINE = re.compile(r"sep=(.)\r?\n", re.IGNORECASE)


def _is_sep_line(row: list[str]) -> bool:
    """The first row is that line: "sep=" and an empty cell, split at the delimiter it names
    ("sep=x" whole if it names another)."""
    return (
        0 < len(row) <= 2
        and len(row[0]) <= 5
        and row[0].lower().startswith("sep=")
        and (not any(row[1:]))
    )


# Excel for Mac writes its plain "CSV" in Mac Roman. Its accented letters (é è à ç ä ö ü...) are
# bytes 0x80-0x9F, where Windows-1252 has punctuation and rare letters (or nothing: 0x81, 0x8D,
# 0x8F, 0x90, 0x9D), while Windows-1252's accented letters are 0xC0-0xFF. The punctuation
# Windows-1252 text does use there (quotes, dashes, €, …, œ, ™, •) is not counted.
_CP1252_UNDEFINED = frozenset(b"\x81\x8d\x8f\x90\x9d")
_CP1252_PUNCTUATION = frozenset(b"\x80\x85\x8c\x91\x92\x93\x94\x95\x96\x97\x99\x9c")


def _is_mac_roman(head: bytes) -> bool:
    """Whether the bytes of `head` that are not UTF-8 (a UTF-8 file may hold a stray byte of
    another encoding) are Mac Roman's accented letters rather than Windows-1252's."""
    escaped = head.decode("utf-8", errors="surrogateescape")
    if any("\x80" <= c < "\udc80" or c > "\udcff" for c in escaped):
        return False  # UTF-8 text with stray bytes (read as Windows-1252 one by one)
    counts = collections.Counter(ord(c) - 0xDC00 for c in escaped if "\udc80" <= c <= "\udcff")
    if any(counts[byte] for byte in _CP1252_UNDEFINED):
        return True
    mac_letters = sum(
        n for byte, n in counts.items() if byte < 0xA0 and byte not in _CP1252_PUNCTUATION
    )
    return mac_letters > sum(n for byte, n in counts.items() if byte >= 0xC0)


def _encoding_of(head: bytes) -> str:
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return "mac_roman" if _is_mac_roman(head) else "cp1252"
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
    if encoding in ("utf-16", "mac_roman"):
        sample = head.decode(encoding, errors="ignore")
    else:
        sample = head.decode("utf-8", errors=_FALLBACK)
    sample = sample.lstrip("\ufeff")
    declared = _SEP_LINE.match(sample)
    if declared and declared[1] in DELIMITERS:
        return Layout(encoding, declared[1])
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


_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_SI, _T, _IS = f"{_MAIN}si", f"{_MAIN}t", f"{_MAIN}is"
_ROW, _C, _V, _RPH = f"{_MAIN}row", f"{_MAIN}c", f"{_MAIN}v", f"{_MAIN}rPh"
# A shared strings table that inflates to more than this is kept in a temporary file rather
# than in memory (Excel writes every text cell of a sheet there: a million rows of customers
# make a table of hundreds of megabytes).
STRINGS_IN_MEMORY = 8 * 1024**2


# A character XML cannot hold (a carriage return, a control character) is written "_x000D_";
# "_x005F_" is the underscore of a text that looks like such an escape.
_ESCAPED = re.compile(r"_x([0-9A-Fa-f]{4})_")


def _unescape(match: re.Match) -> str:
    return chr(int(match[1], 16))


class _Strings:
    """The texts of a shared strings table (or of a sheet's inline strings), as ElementTree's
    parser calls its target: no element is built, which is most of a parse's cost."""

    def __init__(self):
        self.texts: list[str] = []
        self.parts: list[str] | None = None  # the current string's text
        self.collect = False
        self.phonetic = False

    def start(self, tag, attrs):
        if tag == _T:
            self.collect = not self.phonetic and self.parts is not None
        elif tag in (_SI, _IS):
            self.parts = []
        elif tag == _RPH:
            self.phonetic = True

    def data(self, text):
        if self.collect:
            self.parts.append(text)

    def end(self, tag):
        if tag == _T:
            self.collect = False
        elif tag in (_SI, _IS):
            text = "".join(self.parts)
            self.texts.append(_ESCAPED.sub(_unescape, text) if "_x" in text else text)
            self.parts = None
        elif tag == _RPH:
            self.phonetic = False

    def close(self):
        return None


def _parsed(source, target) -> Iterator[None]:
    """Feed `source` to ElementTree's parser with `target`, a chunk at a time (a pause after
    each: the caller takes what the target gathered)."""
    parser = ElementTree.XMLParser(target=target)
    while chunk := source.read(64 * 1024):
        parser.feed(chunk)
        yield
    parser.close()
    yield


def _shared_strings(source) -> Iterator[str]:
    """Each string of a shared strings table, in order, read a chunk of the XML at a time."""
    target = _Strings()
    for _pause in _parsed(source, target):
        texts, target.texts = target.texts, []
        yield from texts


class _SpilledStrings:
    """A shared strings table in two temporary files (the texts, and where each starts), read
    back by index: memory stays flat whatever the table's size."""

    _OFFSET = struct.Struct("<QQ")

    def __init__(self, texts: Iterator[str]):
        # Open while the sheet is read, closed (and so deleted) by close(): no `with` fits.
        self._texts = tempfile.TemporaryFile()  # noqa: SIM115
        self._offsets = tempfile.TemporaryFile()  # noqa: SIM115
        position, starts = 0, array("Q")
        for text in texts:
            starts.append(position)
            data = text.encode()
            self._texts.write(data)
            position += len(data)
            if len(starts) >= 65536:
                self._offsets.write(starts.tobytes())
                del starts[:]
        starts.append(position)
        self._offsets.write(starts.tobytes())
        self._texts.flush()
        self._offsets.flush()
        self.get = functools.lru_cache(maxsize=4096)(self._read)

    def _read(self, index: int) -> str:
        found = os.pread(self._offsets.fileno(), 16, index * 8) if index >= 0 else b""
        if len(found) < 16:
            raise IndexError(index)
        start, end = self._OFFSET.unpack(found)
        return os.pread(self._texts.fileno(), end - start, start).decode()

    def close(self) -> None:
        self._texts.close()
        self._offsets.close()


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


class _Sheet(_Strings):
    """A worksheet's rows as ElementTree's parser calls its target (no element built): each
    row's cell values, by column, gathered in `rows` until the caller takes them."""

    def __init__(self, strings, date_styles, epoch):
        super().__init__()
        from openpyxl.utils.datetime import from_excel

        self.strings, self.date_styles, self.epoch = strings, date_styles, epoch
        self.from_excel = from_excel
        self.rows: list[tuple[int, list]] = []
        self.number = 0
        self.cells: list = []
        self.cell: tuple = ()
        self.value = None

    def start(self, tag, attrs):
        if tag == _C:
            self.cell = (attrs.get("r"), attrs.get("t", "n"), attrs.get("s"))
            self.value = None
        elif tag == _V:
            self.parts, self.collect = [], True
        elif tag == _ROW:
            self.number = int(attrs.get("r") or self.number + 1)
            self.cells = []
        else:
            super().start(tag, attrs)

    def end(self, tag):
        if tag == _V:
            self.value, self.parts, self.collect = "".join(self.parts), None, False
        elif tag == _IS:
            super().end(tag)
            self.value = self.texts.pop()
        elif tag == _C:
            self._place()
        elif tag == _ROW:
            self.rows.append((self.number, self.cells))
        else:
            super().end(tag)

    def _place(self):
        reference, kind, style = self.cell
        cells = self.cells
        column = _column(reference) if reference else len(cells) + 1
        if column > MAX_COLUMNS:
            return
        cells.extend([None] * (column - 1 - len(cells)))
        value = self.value
        if value is None or kind == "inlineStr":
            pass
        elif kind == "s":
            value = self.strings(int(value))
        elif kind == "n":
            value = _number(value)
            if int(style or 0) in self.date_styles:
                try:
                    value = self.from_excel(value, self.epoch)
                except (OverflowError, ValueError):
                    value = "#VALUE!"  # out of a date's range: refused as a date
        elif kind == "b":
            value = value == "1"
        elif kind == "d":
            value = datetime.fromisoformat(value)
        cells.append(value)


def _sheet_rows(source, strings, date_styles, epoch) -> Iterator[tuple[int, list]]:
    """(row number, cell values) of a worksheet's XML, a chunk of the XML at a time: no row is
    kept once handed over (openpyxl's read-only sheets keep an emptied element, and any
    row's height, per row)."""
    target = _Sheet(strings, date_styles, epoch)
    for _pause in _parsed(source, target):
        rows, target.rows = target.rows, []
        yield from rows


@functools.lru_cache(maxsize=MAX_COLUMNS)
def _column_of_letters(letters: str) -> int:
    from openpyxl.utils.cell import column_index_from_string

    return column_index_from_string(letters)


def _column(reference: str) -> int:
    return _column_of_letters(reference.rstrip("0123456789"))


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
    try:
        reader = _workbook_reader()(binary)
        reader.read()
        book = reader.wb
        if reader.sheet_path is None:
            raise ValueError("no worksheet")
        strings_path = reader.strings_path
        spilled = None
        if strings_path is None:
            strings = [].__getitem__
        elif archive.getinfo(strings_path).file_size <= STRINGS_IN_MEMORY:
            with archive.open(strings_path) as source:
                strings = list(_shared_strings(source)).__getitem__
        else:
            with archive.open(strings_path) as source:
                spilled = _SpilledStrings(_shared_strings(source))
            strings = spilled.get
    except Exception:  # openpyxl and the XML parser raise many kinds for a broken workbook
        raise UnreadableFile(_("The XLSX file could not be read (damaged or not Excel).")) from None
    try:
        with archive.open(reader.sheet_path) as source:
            for number, cells in _sheet_rows(source, strings, book._date_formats, book.epoch):
                cells = [_cell(v) for v in cells]
                while cells and cells[-1] == "":
                    cells.pop()
                yield number, cells
    except UnreadableFile:
        raise
    except Exception:
        raise UnreadableFile(_("The XLSX file is damaged past this point.")) from None
    finally:
        if spilled is not None:
            spilled.close()
        book.close()
        archive.close()


@functools.cache
def _workbook_reader():
    """openpyxl's reader of a workbook's structure, cut to what the import needs: the styles
    (which cells are dates), the epoch, and the first worksheet's path. Not its shared
    strings nor its worksheets: `_xlsx_rows` reads those (openpyxl's read-only sheet parses
    the whole sheet once more, keeping it, to find its size when the file does not say it).
    openpyxl 3.1's ExcelReader (pinned in requirements.txt; tests/imports/test_reading.py
    compares the values with openpyxl's own reading). Imported on first use: only XLSX
    files need openpyxl."""
    from openpyxl.reader.excel import ExcelReader
    from openpyxl.styles.stylesheet import apply_stylesheet

    class WorkbookReader(ExcelReader):
        def __init__(self, binary):
            super().__init__(binary, read_only=True, data_only=True)
            self.strings_path = self.sheet_path = None

        def read(self):
            self.read_manifest()
            self.read_strings()
            self.read_workbook()
            apply_stylesheet(self.archive, self.wb)
            for _sheet, rel in self.parser.find_sheets():
                if rel.target in self.valid_files and "chartsheet" not in rel.Type:
                    self.sheet_path = rel.target
                    break

        def read_strings(self):
            from openpyxl.reader.excel import SHARED_STRINGS

            found = self.package.find(SHARED_STRINGS)
            self.strings_path = found.PartName[1:] if found is not None else None
            self.shared_strings = []

    return WorkbookReader


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
                        % {"limit": f"{MAX_CELL:,}"},
                        code="cell_too_long",
                        value=str(MAX_CELL),
                    ),
                )
                return
            yield (
                start,
                Broken(_("the line cannot be read as CSV"), message, code="not_csv", value=message),
            )
            continue
        except UnicodeDecodeError:
            yield (
                start,
                Broken(
                    _("the text of this line is not in a known encoding"), code="unknown_encoding"
                ),
            )
            return
        line = reader.line_num + 1
        if row and row[0].startswith("\ufeff"):
            row[0] = row[0][1:]
        if start == 1 and _is_sep_line(row):
            continue
        if any("\x00" in cell for cell in row):
            yield start, Broken(_("the line contains NUL characters"), code="nul")
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
