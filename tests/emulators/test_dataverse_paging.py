"""Keyset paging cookies of the Dataverse emulator, checked against a full sort in SQLite.

For every mix of ascending/descending keys over columns with NULLs and case-variant
strings, walking the pages with `after_clause` must return exactly the rows of one
ORDER BY over the whole table, in the same order.
"""

from __future__ import annotations

import itertools
import random
import sqlite3

import pytest

from emulators.dataverse.paging import SortTerm, after_clause, decode_cookie, encode_cookie
from emulators.odata.errors import ODataError


@pytest.fixture(scope="module")
def table() -> sqlite3.Connection:
    rng = random.Random(7)
    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE TABLE t (id TEXT PRIMARY KEY, name TEXT, amount REAL, flag INTEGER)")
    names = [None, "alpha", "Alpha", "beta", "BETA", "gamma"]
    rows = [
        (f"{i:04d}", rng.choice(names), rng.choice([None, 1.5, 2.0, 3.25]), rng.choice([None, 0, 1]))
        for i in range(120)
    ]
    connection.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", rows)
    return connection


def order_sql(terms: list[SortTerm]) -> str:
    return ", ".join(
        f"{t.sql}{' COLLATE NOCASE' if t.is_string else ''} {'DESC' if t.descending else 'ASC'}"
        for t in terms
    )


@pytest.mark.parametrize(
    "directions",
    list(itertools.product([False, True], repeat=3)),
    ids=lambda d: "-".join("desc" if x else "asc" for x in d),
)
def test_pages_concatenate_to_the_full_order(table: sqlite3.Connection, directions: tuple[bool, ...]) -> None:
    terms = [
        SortTerm('"name"', "name", True, directions[0]),
        SortTerm('"amount"', "amount", False, directions[1]),
        SortTerm('"flag"', "flag", False, directions[2]),
        SortTerm('"id"', "id", False, False),
    ]
    order = order_sql(terms)
    expected = [row[0] for row in table.execute(f"SELECT id FROM t ORDER BY {order}")]
    seen: list[str] = []
    where, params = "1=1", []
    while True:
        page = table.execute(
            f"SELECT id, name, amount, flag FROM t WHERE {where} ORDER BY {order} LIMIT 7", params
        ).fetchall()
        seen.extend(row[0] for row in page)
        if len(page) < 7:
            break
        last = page[-1]
        cookie = decode_cookie(encode_cookie(2, [last[1], last[2], last[3], last[0]]), len(terms))
        where, params = after_clause(terms, cookie.values)
    assert seen == expected


def test_cookies_from_elsewhere_are_refused() -> None:
    with pytest.raises(ODataError) as failure:
        decode_cookie('<cookie pagenumber="2" pagingcookie="%%%" istracking="False" />', 1)
    assert failure.value.status == 400
    with pytest.raises(ODataError):
        decode_cookie(encode_cookie(2, ["a", "b"]), 3)  # a cookie of another $orderby
