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
tests/test_compiled.py compares the rows and instances with the queryset's.
"""

import copy

from django.db import connections
from django.db.models.query import ModelIterable, QuerySet


class CompiledQuery:
    def __init__(self, queryset, *markers):
        self.queryset = queryset
        self.using = queryset.db
        self.compiler = queryset.query.get_compiler(using=self.using)
        self.sql, params = self.compiler.as_sql()
        self.params = list(params)
        self.positions = []
        for marker in markers:
            if self.params.count(marker) != 1:
                raise ValueError(f"the marker {marker!r} is not one parameter of the query")
            self.positions.append(self.params.index(marker))

    def params_with(self, *values) -> list:
        """The query's parameters with `values` in place of the markers, in their order."""
        params = list(self.params)
        for position, value in zip(self.positions, values, strict=True):
            params[position] = value
        return params

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
