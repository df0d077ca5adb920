"""The CSV export on PostgreSQL: the server writes the cells, `COPY (…) TO STDOUT` streams them.

Formatting a million rows in Python costs about 20 µs a row (decoding, time zones, dates,
the csv module): under the 50,000 rows/s the export must reach. PostgreSQL's COPY writes
the same CSV in C, and the process only passes the bytes on. The cells are the ones of
columns.csv_cells(), written as SQL expressions over the same queryset (same rows, same
order); tests/exports/test_csv.py checks, on PostgreSQL, that both give the same bytes for
hostile values. SQLite, without COPY, uses the Python writer.
"""

from collections.abc import Callable, Iterator

from django.db import connection, transaction
from django.db.models import (
    Case,
    CharField,
    F,
    Func,
    Q,
    QuerySet,
    TextField,
    Value,
    When,
)
from django.db.models.functions import Cast, Concat, NullIf, Upper
from django.db.models.lookups import In

from exports.columns import COLUMNS, FORMULA_TRIGGERS, INERT_PREFIX, Kind, csv_style, yes_no

# to_char() patterns matching CsvStyle.datetime_format.
TO_CHAR = {"%Y-%m-%d %H:%M": "YYYY-MM-DD HH24:MI", "%d/%m/%Y %H:%M": "DD/MM/YYYY HH24:MI"}


class AtTimeZone(Func):
    template = "(%(expressions)s)"
    arg_joiner = " AT TIME ZONE "
    output_field = CharField()


class ToChar(Func):
    function = "to_char"
    output_field = TextField()


def _inert(expression):
    """make_inert() in SQL: a quote before a cell starting with a formula trigger."""
    starts = Func(expression, Value(1), function="left", output_field=TextField())
    return Case(
        When(
            In(starts, list(FORMULA_TRIGGERS)),
            then=Concat(Value(INERT_PREFIX), expression, output_field=TextField()),
        ),
        default=expression,
        output_field=TextField(),
    )


def _cell(column, *, language: str, zone_name: str):
    field = F(column.field)
    style = csv_style(language)
    if column.kind is Kind.TEXT:
        return _inert(field)
    if column.kind is Kind.COUNTRY:
        return _inert(Upper(field))
    if column.kind is Kind.INTEGER:
        return Cast(field, TextField())
    if column.kind is Kind.DATETIME:
        return ToChar(AtTimeZone(field, Value(zone_name)), Value(TO_CHAR[style.datetime_format]))
    if column.kind is Kind.MONEY:
        text = Cast(field, TextField())
        if style.decimal_separator == ".":
            return text
        return Func(
            text,
            Value("."),
            Value(style.decimal_separator),
            function="replace",
            output_field=TextField(),
        )
    if column.kind is Kind.BOOLEAN:
        yes, no = yes_no(language)
        return Case(
            When(Q(**{column.field: True}), then=Value(yes)),
            default=Value(no),
            output_field=TextField(),
        )
    raise ValueError(f"no SQL cell for {column.kind}")


def copy_sql(customers: QuerySet, *, language: str, zone_name: str) -> str:
    """The COPY statement writing `customers` (export_customers()'s queryset) as the CSV rows of
    `language`, dates in the time zone `zone_name`. Every cell is NULL when empty, which COPY
    writes as nothing, and every other one is quoted (FORCE_QUOTE *), as the Python writer
    does (csv.QUOTE_NOTNULL)."""
    cells = {
        f"export_cell_{index}": NullIf(
            _cell(column, language=language, zone_name=zone_name),
            Value(""),
            output_field=TextField(),
        )
        for index, column in enumerate(COLUMNS)
    }
    queryset = customers.annotate(**cells).values_list(*cells)
    sql, params = queryset.query.sql_with_params()
    # COPY takes no bound parameters: psycopg quotes them into the statement.
    query = connection.ops.compose_sql(sql, params)
    delimiter = connection.ops.compose_sql("%s", [csv_style(language).delimiter])
    return f"COPY ({query}) TO STDOUT (FORMAT csv, DELIMITER {delimiter}, FORCE_QUOTE *)"


# Bytes gathered before a chunk goes to the response: COPY hands over one row at a time.
CHUNK_BYTES = 64 * 1024


def copy_chunks(sql: str, *, counter: Callable[[int], None] | None = None) -> Iterator[bytes]:
    """The output of a COPY … TO STDOUT statement, in chunks of about CHUNK_BYTES.

    `counter(n)` gets the lines sent after each chunk (the rows, unless a cell holds a line
    break), and at the end the exact number of rows COPY reports."""
    # In a transaction (or a savepoint) of its own: a download stopped midway cancels the
    # statement, which would otherwise break the transaction the caller may be in.
    with transaction.atomic(), connection.cursor() as cursor:
        lines = 0
        with cursor.copy(sql) as copy:
            blocks, size = [], 0
            for block in copy:
                blocks.append(block)
                size += len(block)
                if size >= CHUNK_BYTES:
                    chunk = b"".join(blocks)
                    blocks, size = [], 0
                    yield chunk
                    if counter:
                        lines += chunk.count(b"\n")
                        counter(lines)
            if blocks:
                yield b"".join(blocks)
        if counter:
            counter(cursor.rowcount)
