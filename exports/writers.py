"""The export's file formats: CSV written as it streams, XLSX in XlsxWriter's constant-memory
mode. Both take an iterator of `values_list(*FIELDS)` rows and never hold more than one
batch of them."""

import csv
import io
from collections.abc import Callable, Iterable, Iterator

import xlsxwriter

from exports.columns import COLUMNS, Kind, csv_cells, csv_style, headers, yes_no

# Rows written to the CSV buffer before it is handed to the response: large enough that the
# per-chunk cost (a write to the socket, gzip's flush) does not count, small enough to stay
# a few hundred kilobytes.
CSV_BATCH = 1000


def csv_head(language: str) -> bytes:
    """The start of a CSV file in `language`: the byte order mark if it has one, the headers."""
    style = csv_style(language)
    buffer = io.StringIO()
    if style.bom:
        buffer.write("\ufeff")
    _csv_writer(buffer, style).writerow(headers(language))
    return buffer.getvalue().encode()


def _csv_writer(buffer, style):
    # Every non-empty cell quoted: with minimal quoting, Python's csv module (3.12) leaves a
    # carriage return inside a cell unquoted when lines end with "\n", which breaks the row.
    return csv.writer(
        buffer, delimiter=style.delimiter, lineterminator="\n", quoting=csv.QUOTE_NOTNULL
    )


def csv_chunks(
    rows: Iterable[tuple], *, language: str, zone, counter: Callable[[int], None] | None = None
) -> Iterator[bytes]:
    """The CSV rows of `rows` (values_list(*FIELDS) tuples) in `language`, as UTF-8 chunks of
    CSV_BATCH rows; `counter(n)` is called with the number of rows written after each."""
    style = csv_style(language)
    buffer = io.StringIO()
    writer = _csv_writer(buffer, style)
    cells = csv_cells(language, zone)
    written = 0
    batch = []
    for row in rows:
        batch.append(cells(row))
        if len(batch) == CSV_BATCH:
            writer.writerows(batch)
            written += len(batch)
            batch.clear()
            yield _drain(buffer)
            if counter:
                counter(written)
    if batch:
        writer.writerows(batch)
        written += len(batch)
        yield _drain(buffer)
    if counter:
        counter(written)


def _drain(buffer: io.StringIO) -> bytes:
    data = buffer.getvalue().encode()
    buffer.seek(0)
    buffer.truncate()
    return data


# Excel's last row is 1,048,576: longer exports continue on another sheet, headers again.
XLSX_MAX_ROWS = 1_048_576
XLSX_DATETIME_FORMATS = {"en": "yyyy-mm-dd hh:mm", "fr": "dd/mm/yyyy hh:mm"}
XLSX_WIDTHS = {
    Kind.INTEGER: 10,
    Kind.TEXT: 22,
    Kind.DATETIME: 17,
    Kind.MONEY: 12,
    Kind.BOOLEAN: 10,
    Kind.COUNTRY: 8,
}
XLSX_PROGRESS_EVERY = 5000


def write_xlsx(
    path,
    rows: Iterable[tuple],
    *,
    language: str,
    zone,
    sheet_name: str,
    counter: Callable[[int], None] | None = None,
) -> int:
    """Write the XLSX file of `rows` in `language` at `path`; the number of rows written.

    Values keep their types (numbers, dates in `zone` with the language's date format); text
    is written as text whatever it starts with (write_string, and XlsxWriter's conversions of
    strings to formulas, numbers and links turned off), so no cell is ever a formula.
    `counter(n)` is called every XLSX_PROGRESS_EVERY rows.
    """
    base = language.split("-")[0].lower()
    workbook = xlsxwriter.Workbook(
        str(path),
        {
            "constant_memory": True,
            "strings_to_formulas": False,
            "strings_to_numbers": False,
            "strings_to_urls": False,
        },
    )
    bold = workbook.add_format({"bold": True})
    dates = workbook.add_format({"num_format": XLSX_DATETIME_FORMATS.get(base, "yyyy-mm-dd hh:mm")})
    money = workbook.add_format({"num_format": "0.00"})
    yes, no = yes_no(language)
    header_row = headers(language)
    kinds = [column.kind for column in COLUMNS]
    sheets = 0
    sheet = None
    line = XLSX_MAX_ROWS
    written = 0

    def new_sheet():
        nonlocal sheets
        sheets += 1
        name = sheet_name if sheets == 1 else f"{sheet_name} ({sheets})"
        worksheet = workbook.add_worksheet(name[:31])
        for index, kind in enumerate(kinds):
            worksheet.set_column(index, index, XLSX_WIDTHS[kind])
        worksheet.freeze_panes(1, 0)
        worksheet.write_row(0, 0, header_row, bold)
        return worksheet

    try:
        for row in rows:
            if line >= XLSX_MAX_ROWS:
                sheet, line = new_sheet(), 1
            for index, (kind, value) in enumerate(zip(kinds, row, strict=True)):
                if value is None or value == "":
                    continue
                if kind is Kind.TEXT:
                    sheet.write_string(line, index, value)
                elif kind is Kind.DATETIME:
                    sheet.write_datetime(
                        line, index, value.astimezone(zone).replace(tzinfo=None), dates
                    )
                elif kind is Kind.INTEGER:
                    sheet.write_number(line, index, value)
                elif kind is Kind.MONEY:
                    sheet.write_number(line, index, float(value), money)
                elif kind is Kind.BOOLEAN:
                    sheet.write_string(line, index, yes if value else no)
                else:
                    sheet.write_string(line, index, value.upper())
            line += 1
            written += 1
            if counter and written % XLSX_PROGRESS_EVERY == 0:
                counter(written)
        if sheet is None:
            new_sheet()
    finally:
        workbook.close()
    return written
