"""Ids posted in forms or query strings, before they reach a lookup.

`Model.objects.filter(pk="abc")` raises ValueError (a 500), and so do str.isdigit() strings
that int() refuses ("²") or that pass Python's 4,300-digit limit. A value that cannot be one of
our ids (bigint primary keys) is None here, so the caller answers with a clear message instead.
"""

import re
from collections.abc import Iterable

_DIGITS = re.compile(r"[0-9]{1,19}")  # ASCII digits only; 19 is the width of a bigint
MAX_ID = 2**63 - 1


def parse_id(value: object) -> int | None:
    """The id in `value` (a string of ASCII digits within bigint range), else None."""
    if not isinstance(value, str) or not _DIGITS.fullmatch(value):
        return None
    number = int(value)
    return number if number <= MAX_ID else None


def parse_ids(values: Iterable[object]) -> list[int] | None:
    """Every value as an id, or None if any of them is not one (a form that was tampered with
    is refused as a whole, never acted on in part)."""
    ids = [parse_id(v) for v in values]
    return [i for i in ids if i is not None] if None not in ids else None
