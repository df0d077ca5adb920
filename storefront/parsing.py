"""The request body parser: strict JSON."""

import json

from ninja.parser import Parser

from storefront.problems import Problem


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _no_duplicates(pairs):
    result = dict(pairs)
    if len(result) != len(pairs):  # a key twice: find which (dict() alone costs less CPU)
        seen = set()
        for key, _value in pairs:
            if key in seen:
                raise ValueError(f"the key {key!r} appears twice")
            seen.add(key)
    return result


class StrictJsonParser(Parser):
    """JSON as RFC 8259 says: UTF-8, no NaN/Infinity, no key twice in an object."""

    def parse_body(self, request):
        try:
            return json.loads(
                request.body.decode("utf-8"),
                parse_constant=_no_constant,
                object_pairs_hook=_no_duplicates,
            )
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise Problem("malformed-json", f"The body is not valid JSON: {exc}.") from None
