"""A queryset compiled to SQL once per process and run again with other parameters.

Compiling a queryset with subqueries or a UNION costs more CPU than running it (0.6-0.8 ms
for the segments panel's read of the tab's segments and the tags, on every list page). A
`CompiledQuery` keeps the SQL and the ORM compiler of a template queryset built with marker
values, and runs that SQL with the request's values in their place; the rows are converted
by that compiler, as the queryset's own rows would be (SQLite's dates included).

`rows()` is for `values_list()` querysets (a model's query may run its SQL through `raw()`
with `params_with()`); `objects()` gives a model queryset's instances, built by Django's own
ModelIterable (related objects of select_related(), annotations, deferred fields) from the
compiled SQL. Relies on the compiler's `as_sql()`, `execute_sql()` and `results_iter()`, and on
ModelIterable reading only `query.get_compiler()` of the queryset it iterates.

A marker is one parameter of the query, or part of one text parameter: the pattern of a
`contains`-like lookup ("%marker%"), where the value takes its place escaped as Django escapes
such a lookup's value (`prep_for_like_query`). `CompiledStatement.capture()` compiles what the
ORM sends for a call that is not a queryset's own SQL (a `count()`): the statement is taken
from an execute wrapper (Django's documented instrumentation hook) and not executed.
tests/test_compiled.py compares the rows, instances and statements with the ORM's.
"""

import copy

from django.db import connections
from django.db.models.query import ModelIterable, QuerySet


class CompiledStatement:
    """SQL with marker parameters, run with other values in their place."""

    def __init__(self, using: str, sql: str, params, markers):
        self.using = using
        self.sql = sql
        self.params = list(params)
        # Per marker: its parameter's index, and for a marker within a text parameter the
        # text around it (else None).
        self.positions = []
        for marker in markers:
            if self.params.count(marker) == 1:
                self.positions.append((self.params.index(marker), None))
                continue
            within = [
                index
                for index, param in enumerate(self.params)
                if isinstance(marker, str) and isinstance(param, str) and marker in param
            ]
            if self.params.count(marker) or len(within) != 1:
                raise ValueError(f"the marker {marker!r} is not one parameter of the query")
            prefix, _, suffix = self.params[within[0]].partition(marker)
            if marker in suffix:
                raise ValueError(f"the marker {marker!r} is twice in a parameter")
            self.positions.append((within[0], (prefix, suffix)))

    @classmethod
    def capture(cls, using: str, run, *markers) -> "CompiledStatement":
        """The first statement `run()` sends to the database `using` (a call of the ORM made
        with the markers as values), compiled; it is not executed."""

        def capture(execute, sql, params, many, context):
            raise _Captured(sql, params)

        connection = connections[using]
        logged = connection.queries_logged
        try:
            with connection.execute_wrapper(capture):
                run()
        except _Captured as captured:
            if logged and connection.queries_log:
                # The debug cursor (DEBUG on, or a test counting queries) logged the
                # statement, which was not sent.
                connection.queries_log.pop()
            return cls(using, captured.sql, captured.params, markers)
        raise ValueError("the call sent no statement to the database")

    def params_with(self, *values) -> list:
        """The query's parameters with `values` in place of the markers, in their order."""
        params = list(self.params)
        like = connections[self.using].ops.prep_for_like_query
        for (position, around), value in zip(self.positions, values, strict=True):
            params[position] = value if around is None else around[0] + like(value) + around[1]
        return params

    def value(self, *values):
        """The first column of the first row of the statement run with `values`."""
        with connections[self.using].cursor() as cursor:
            cursor.execute(self.sql, self.params_with(*values))
            return cursor.fetchone()[0]


class _Captured(Exception):
    def __init__(self, sql, params):
        super().__init__(sql)
        self.sql, self.params = sql, params


class CompiledQuery(CompiledStatement):
    def __init__(self, queryset, *markers):
        self.queryset = queryset
        self.compiler = queryset.query.get_compiler(using=queryset.db)
        super().__init__(queryset.db, *self.compiler.as_sql(), markers)

    def rows(self, *values) -> list[tuple]:
        """The rows of the query with `values` in place of the markers, in their order."""
        with connections[self.using].cursor() as cursor:
            cursor.execute(self.sql, self.params_with(*values))
            fetched = cursor.fetchall()
        return list(self.compiler.results_iter([fetched], tuple_expected=True))

    def objects(self, *values) -> list:
        """The model instances of the query with `values` in place of the markers, as the
        queryset gives them (it must not prefetch: prefetch_related() is not run)."""
        if self.queryset._prefetch_related_lookups:
            raise ValueError("objects() does not prefetch")
        # A copy of the compiler, on this thread's connection, whose SQL is the compiled one.
        compiler = copy.copy(self.compiler)
        compiler.connection = connections[self.using]
        compiled = (self.sql, tuple(self.params_with(*values)))
        compiler.as_sql = lambda *args, **kwargs: compiled
        run = QuerySet(model=self.queryset.model, query=_Compiled(compiler), using=self.using)
        run._fetch_mode = self.queryset._fetch_mode
        return list(ModelIterable(run))


class _Compiled:
    """Stands for the query of the queryset ModelIterable runs: gives it the compiler."""

    def __init__(self, compiler):
        self.compiler = compiler

    def get_compiler(self, using=None, connection=None, elide_empty=True):
        return self.compiler
