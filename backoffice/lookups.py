"""Lookups whose value is written into the SQL rather than sent as a parameter.

The lists' partial indexes are defined by constants: the tab (`orders_count > 0`, `= 0`) and,
for some, the lifecycle groups they hold (Django writes a yes/no filter inline already). The
connections prepare a statement run five times (backoffice.env: prepare_threshold), and
PostgreSQL may then keep one generic plan for it, made without the parameters' values:
`orders_count > $1` or `lifecycle_group = $1` proves none of those indexes, and a page becomes
a scan of a whole sort index (measured on a million customers with `plan_cache_mode =
force_generic_plan`: the Clients tab by total spent 1,581 ms instead of 0.5, the Lost group by
id descending 225 ms instead of 0.6). Written inline, the constant is part of the statement,
so every plan of it can use them; a statement per value is prepared, which for a tab or a
group is a handful.

The same holds for a partial index's predicate: the unique index on the customers'
`external_id` covers `external_id <> ''` only, and `external_id = $1` alone proves nothing in a
generic plan (a scan of a million customers, 195 ms, for each order sent with
`customer_external_id`); clients.selectors.customers_with_external_id adds the predicate
written inline.

Only for closed sets of values (a tab, a validated choice, ''): anything else stays a
parameter.
"""

import re

from django.db.models import Field
from django.db.models.lookups import Exact, GreaterThan

_WORD = re.compile(r"[a-z_]{1,40}")


class _WrittenInline:
    operator = ""

    def process_rhs(self, compiler, connection):
        value = self.rhs
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value), []
        if isinstance(value, str) and (value == "" or _WORD.fullmatch(value)):
            return f"'{value}'", []
        raise ValueError(f"{self.lookup_name} takes an int, a lowercase word or '', not {value!r}")

    def get_rhs_op(self, connection, rhs):
        return connection.operators[self.operator] % rhs


@Field.register_lookup
class InlineExact(_WrittenInline, Exact):
    lookup_name = "inline_exact"
    operator = "exact"


@Field.register_lookup
class InlineGreaterThan(_WrittenInline, GreaterThan):
    lookup_name = "inline_gt"
    operator = "gt"
