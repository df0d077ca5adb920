"""Reading XLSX files with flat memory: the shared strings table in a temporary file when it
is large, and each row of the sheet dropped once read; the values are openpyxl's own."""

import io
import tracemalloc
from datetime import datetime

import pytest
from openpyxl import Workbook, load_workbook

from imports import reading


def _workbook() -> bytes:
    """A sheet as Excel writes one (openpyxl puts every text in the shared strings table)."""
    book = Workbook()
    sheet = book.active
    sheet.append(["Email", "First Name", "Total", "Since", "Accepts", "Note"])
    sheet.append(["zoe@example.com", "Zoé", 12.5, datetime(2024, 12, 31, 14, 5), True, "a&b <c>"])
    sheet.append(["bob@example.com", None, 3, datetime(2025, 1, 2), False, "line\nbreak"])
    sheet.append([])  # an empty row, then a gap of rows
    sheet["A7"] = "last@example.com"
    sheet["D7"] = "31/12/2025"
    sheet["F7"] = 70123456789012
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _read(data: bytes) -> list:
    return list(reading.read_rows(io.BytesIO(data), reading.Layout("xlsx")))


def test_xlsx_values_are_openpyxls_whether_strings_are_in_memory_or_on_disk(monkeypatch):
    data = _workbook()
    in_memory = _read(data)
    monkeypatch.setattr(reading, "STRINGS_IN_MEMORY", 0)
    assert _read(data) == in_memory
    # openpyxl's own reading of the same file (all of it in memory), as the reader shapes it.
    sheet = load_workbook(io.BytesIO(data), data_only=True).active
    expected = []
    for number, row in enumerate(sheet.iter_rows(values_only=True), start=1):
        cells = [reading._cell(v) for v in row]
        while cells and cells[-1] == "":
            cells.pop()
        if cells:
            expected.append((number, cells))
    assert in_memory == expected
    assert in_memory[1] == (
        2,
        ["zoe@example.com", "Zoé", "12.5", datetime(2024, 12, 31, 14, 5), "yes", "a&b <c>"],
    )
    assert in_memory[-1] == (7, ["last@example.com", "", "", "31/12/2025", "", "70123456789012"])


def test_characters_xml_cannot_hold_are_read_back():
    """Excel and XlsxWriter write a carriage return as "_x000D_", and a text that looks like
    such an escape with its underscore escaped ("_x005F_"); openpyxl leaves both as written."""
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    sheet = (
        f'<worksheet xmlns="{main}"><sheetData><row r="1">'
        '<c r="A1" t="inlineStr"><is><t>_x000D_CR</t></is></c>'
        '<c r="B1" t="inlineStr"><is><t>_x005F_x000D_ as typed</t></is></c>'
        "</row></sheetData></worksheet>"
    ).encode()
    rows = list(reading._sheet_rows(io.BytesIO(sheet), [].__getitem__, set(), None))
    assert rows == [(1, ["\rCR", "_x000D_ as typed"])]


def test_the_strings_file_reads_back_every_string():
    texts = [f"text {n} é" * (n % 3) for n in range(70_000)]  # more than one offsets chunk
    spilled = reading._SpilledStrings(iter(texts))
    try:
        assert [spilled.get(n) for n in (0, 1, 2, 65_535, 65_536, 69_999)] == [
            texts[n] for n in (0, 1, 2, 65_535, 65_536, 69_999)
        ]
        with pytest.raises(IndexError):
            spilled.get(70_000)
    finally:
        spilled.close()


def _sheet_xml(rows: int) -> bytes:
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    body = "".join(
        f'<row r="{n}" ht="15" customHeight="1"><c r="A{n}" t="inlineStr"><is><t>a{n}@example.com'
        f'</t></is></c><c r="C{n}"><v>{n}</v></c></row>'
        for n in range(1, rows + 1)
    )
    return f'<worksheet xmlns="{main}"><sheetData>{body}</sheetData></worksheet>'.encode()


def test_a_sheet_is_read_without_keeping_its_rows():
    source = io.BytesIO(_sheet_xml(50_000))
    tracemalloc.start()
    try:
        count = 0
        for number, cells in reading._sheet_rows(source, [].__getitem__, set(), None):
            count += 1
            assert cells == [f"a{number}@example.com", None, number]
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 50_000
    # Keeping an emptied element per row (openpyxl's read-only sheets) takes several MB here.
    assert peak < 1_000_000, peak


def test_rich_text_runs_are_joined_and_phonetic_hints_left_out():
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    table = (
        f'<sst xmlns="{main}"><si><t>plain</t></si>'
        "<si><r><rPr><b/></rPr><t>Zo</t></r><r><t>é</t></r></si>"
        "<si><t>東京</t><rPh sb='0' eb='2'><t>トウキョウ</t></rPh></si>"
        '<si><t xml:space="preserve"> a_x000D_b </t></si></sst>'
    ).encode()
    assert list(reading._shared_strings(io.BytesIO(table))) == ["plain", "Zoé", "東京", " a\rb "]


def test_an_excel_sep_line_gives_the_delimiter_and_is_not_the_header():
    """Some tools start a CSV meant for Excel with "sep=;", which Excel reads as the delimiter
    and hides. It was taken for the header (every row then refused for its cells)."""
    from pathlib import Path

    data = (Path(__file__).parent / "files" / "excel_sep_line.csv").read_bytes()
    layout = reading.sniff(io.BytesIO(data))
    assert layout.delimiter == ";"
    assert list(reading.read_rows(io.BytesIO(data), layout)) == [
        (2, ["Email", "First Name", "Last Name"]),
        (3, ["zoe@example.com", "Zoé", "Roux"]),
    ]
    # A comma file that declares it; a header whose first cell merely starts so stays one.
    for data, header in (
        (b"sep=,\nEmail,Name\nzoe@example.com,Zoe\n", (2, ["Email", "Name"])),
        (b"sep=and more,Name\nzoe@example.com,Zoe\n", (1, ["sep=and more", "Name"])),
    ):
        rows = reading.read_rows(io.BytesIO(data), reading.sniff(io.BytesIO(data)))
        assert next(rows) == header


def test_a_csv_saved_by_excel_for_mac_in_mac_roman():
    """Excel for Mac's plain "CSV" is in Mac Roman, whose accented letters are bytes that
    Windows-1252 reads as other characters (é as Ž) or not at all (è): "Lefèvre" was stored
    as "Lef\\x8fvre"."""
    from pathlib import Path

    data = (Path(__file__).parent / "files" / "excel_mac_macroman.csv").read_bytes()
    layout = reading.sniff(io.BytesIO(data))
    assert (layout.encoding, layout.delimiter) == ("mac_roman", ";")
    rows = [cells for _line, cells in reading.read_rows(io.BytesIO(data), layout)]
    assert rows[1] == ["helene@example.fr", "Hélène", "Lefèvre", "Besançon"]
    assert rows[2][1:3] == ["Jürgen", "Müller"] and rows[3][2] == "O’Brien"
    # Windows-1252 text, its curly quotes and dashes included, stays Windows-1252.
    text = "Email;Nom\r\na@example.fr;O’Brien – Hélène Lefèvre\r\n"
    layout = reading.sniff(io.BytesIO(text.encode("cp1252")))
    assert layout.encoding == "cp1252"
    # So does UTF-8 with a stray Windows-1252 byte, whatever its UTF-8 characters' bytes.
    data = "Email;Nom\r\na@example.fr;“Ýves” Élan\r\n".encode() + "b@example.fr;Béa\r\n".encode(
        "cp1252"
    )
    assert reading.sniff(io.BytesIO(data)).encoding == "cp1252"
    data = "Email;Nom\r\na@example.fr;Élan\r\n".encode() + b"b@example.fr;B\x8fa\r\n"
    assert reading.sniff(io.BytesIO(data)).encoding == "cp1252"
