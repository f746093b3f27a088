"""The OData query library's system query options ($select, $orderby, ...) and property tests."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulators.odata.filter_parse import (
    BinaryNode,
    LiteralNode,
    parse_filter,
    quote_string,
)
from emulators.odata.filter_sql import ColumnRef, compile_filter
from emulators.odata.query import (
    OrderItem,
    compile_orderby,
    compile_query,
    parse_orderby,
    parse_query_options,
    parse_select,
)
from emulators.schema.model import EdmType
from tests.support.odata_tables import dataverse_resolver, error_of, shape

# ---------------------------------------------------------------------------
# Query options
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("option", ["$skip", "$search", "$format", "$Select", "$filters", "$levels"])
def test_dataverse_refuses_unsupported_options(option: str) -> None:
    error = error_of(parse_query_options, [(option, "1")], "dataverse")
    assert (error.status, error.code) == (400, "0x0")
    assert error.message == f"The query parameter {option} is not supported"


def test_fno_accepts_skip_and_format_but_not_unknown_options() -> None:
    options = parse_query_options({"$skip": "20", "$top": "10", "$format": "json"}, "fno")
    assert (options.skip, options.top, options.format) == (20, 10, "json")
    error = error_of(parse_query_options, [("$search", "x")], "fno")
    assert (
        error.message
        == "The query specified in the URI is not valid. The query parameter '$search' is not supported."
    )
    assert error.inner is not None
    assert error.inner["message"] == "The query parameter '$search' is not supported."


def test_full_option_set_is_parsed() -> None:
    options = parse_query_options(
        [
            ("$select", "name, revenue,name"),
            ("$filter", "revenue gt @p1"),
            ("$orderby", "name desc,revenue"),
            ("$top", "3"),
            ("$count", "true"),
            ("$expand", "primarycontactid($select=fullname)"),
            ("$skiptoken", "<cookie/>"),
            ("@p1", "100"),
            ("tag", "sync-run-7"),
        ],
        "dataverse",
    )
    assert options.select == ("name", "revenue")
    assert options.filter_text == "revenue gt @p1"
    assert shape(options.filter) == ("gt", "revenue", 100)
    assert options.orderby == (OrderItem("name", True), OrderItem("revenue", False))
    assert (options.top, options.count, options.skip) == (3, True, None)
    assert options.expand == "primarycontactid($select=fullname)"
    assert options.skiptoken == "<cookie/>"
    assert options.aliases == {"@p1": "100"}
    assert options.custom == {"tag": "sync-run-7"}


def test_fno_custom_options_pass_through() -> None:
    options = parse_query_options({"cross-company": "true", "$filter": "dataAreaId eq 'usmf'"}, "fno")
    assert options.custom == {"cross-company": "true"}
    assert options.aliases == {}


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ([("$top", "1"), ("$top", "2")], "Query option '$top' was specified more than once"),
        ([("$top", "-1")], "Invalid value '-1' for $top query option found."),
        ([("$top", "ten")], "The $top query option requires a non-negative integer value."),
        (
            [("$count", "yes")],
            "Invalid value 'yes' for $count query option found. Valid values are 'true, false'.",
        ),
        ([("$select", "name,,revenue")], "Term '' is not valid in a $select or $expand expression."),
        ([("$select", "primarycontactid/fullname")], "Term 'primarycontactid/fullname' is not valid"),
        ([("$orderby", "name sideways")], "Syntax error at position 5 in 'name sideways'."),
        ([("$orderby", "name,")], "Expression expected at position 5 in 'name,'."),
        ([("$filter", "name eq")], "Expression expected at position 7"),
    ],
)
def test_option_value_errors(pairs: list[tuple[str, str]], message: str) -> None:
    assert message in error_of(parse_query_options, pairs, "dataverse").message


def test_select_star_means_everything() -> None:
    assert parse_select("*", "dataverse") is None
    assert parse_select(" name ,_primarycontactid_value", "dataverse") == ("name", "_primarycontactid_value")


def test_orderby_runs_case_insensitively_on_sqlite(accounts_db: sqlite3.Connection) -> None:
    order = compile_orderby(parse_orderby("name asc", "dataverse"), dataverse_resolver)
    names = [row[0] for row in accounts_db.execute(f"SELECT name FROM accounts ORDER BY {order}")]
    assert names == [None, "ADVENTURE works", "Contoso Ltd", "Fabrikam (sample)", "o'brian & sons 100%"]
    order = compile_orderby(
        parse_orderby("creditonhold desc,numberofemployees desc", "dataverse"), dataverse_resolver
    )
    ids = [row[0] for row in accounts_db.execute(f"SELECT id FROM accounts ORDER BY {order}")]
    assert ids == [5, 2, 1, 4, 3]


def test_orderby_alias_and_bad_alias() -> None:
    assert parse_orderby("@p1 desc", "dataverse", aliases={"@p1": "revenue"}) == (OrderItem("revenue", True),)
    error = error_of(parse_orderby, "@p1", "dataverse", aliases={"@p1": "'text'"})
    assert "single value of primitive type" in error.message


def test_compile_query_resolves_everything(accounts_db: sqlite3.Connection) -> None:
    options = parse_query_options(
        {"$select": "name,_primarycontactid_value", "$filter": "revenue gt 1000", "$orderby": "revenue desc"},
        "dataverse",
    )
    compiled = compile_query(options, dataverse_resolver, dialect="dataverse")
    assert compiled.columns is not None
    columns = ", ".join(c.sql for c in compiled.columns)
    sql = f"SELECT {columns} FROM accounts WHERE {compiled.where} ORDER BY {compiled.order_by}"
    rows = accounts_db.execute(sql, compiled.params).fetchall()
    assert rows == [
        ("Contoso Ltd", "aaaaaaaa-0000-0000-0000-000000000001"),
        ("ADVENTURE works", None),
        ("Fabrikam (sample)", None),
    ]
    bad = parse_query_options({"$select": "Name"}, "dataverse")
    assert (
        "Could not find a property named 'Name'"
        in error_of(compile_query, bad, dataverse_resolver, dialect="dataverse").message
    )


# ---------------------------------------------------------------------------
# Property-based tests
# ---------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=40))
def test_string_literal_escaping_round_trips(value: str) -> None:
    node = parse_filter(f"name eq {quote_string(value)}", "dataverse")
    assert isinstance(node, BinaryNode)
    assert isinstance(node.right, LiteralNode)
    assert node.right.value == value
    _, params = compile_filter(node, dataverse_resolver, dialect="dataverse")
    assert params == [value]


# A random table and random boolean trees, evaluated by SQLite and by a Python model of
# SQL's three-valued logic; the two must select the same rows.
_NAMES = ["alpha", "Alpha", "beta", "GAMMA", "delta", None]
_ROW = st.fixed_dictionaries(
    {
        "s": st.sampled_from(_NAMES),
        "n": st.one_of(st.none(), st.integers(-3, 3)),
        "b": st.one_of(st.none(), st.booleans()),
    }
)
_TREE_RESOLVER = {
    "s": ColumnRef('"s"', None, EdmType.STRING),
    "n": ColumnRef('"n"', None, EdmType.INT32),
    "b": ColumnRef('"b"', None, EdmType.BOOLEAN),
}
_OPS = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
}


def _leaf() -> st.SearchStrategy[tuple[str, Any]]:
    string_leaf = st.tuples(st.just("s"), st.sampled_from(list(_OPS)), st.sampled_from(_NAMES))
    number_leaf = st.tuples(
        st.just("n"), st.sampled_from(list(_OPS)), st.one_of(st.none(), st.integers(-3, 3))
    )
    bool_leaf = st.tuples(st.just("b"), st.sampled_from(["eq", "ne"]), st.one_of(st.none(), st.booleans()))
    return st.one_of(string_leaf, number_leaf, bool_leaf).map(lambda t: ("leaf", t))


_TREES = st.recursive(
    _leaf(),
    lambda children: st.one_of(
        st.tuples(st.sampled_from(["and", "or"]), children, children),
        st.tuples(st.just("not"), children),
    ),
    max_leaves=12,
)


def _render(tree: Any) -> str:
    if tree[0] == "leaf":
        column, op, value = tree[1]
        if value is None:
            literal = "null"
        elif isinstance(value, bool):
            literal = "true" if value else "false"
        elif isinstance(value, str):
            literal = quote_string(value)
        else:
            literal = str(value)
        return f"{column} {op} {literal}"
    if tree[0] == "not":
        return f"not ({_render(tree[1])})"
    return f"({_render(tree[1])}) {tree[0]} ({_render(tree[2])})"


def _evaluate(tree: Any, row: dict[str, Any]) -> bool | None:
    kind = tree[0]
    if kind == "leaf":
        column, op, value = tree[1]
        actual = row[column]
        if value is None and op in ("eq", "ne"):
            return (actual is None) == (op == "eq")
        if actual is None or value is None:
            return None
        if column == "s":
            actual, value = actual.lower(), value.lower()
        return _OPS[op](actual, value)
    if kind == "not":
        inner = _evaluate(tree[1], row)
        return None if inner is None else not inner
    left, right = _evaluate(tree[1], row), _evaluate(tree[2], row)
    if kind == "and":
        if left is False or right is False:
            return False
        return None if None in (left, right) else True
    if left is True or right is True:
        return True
    return None if None in (left, right) else False


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(_ROW, min_size=1, max_size=8), tree=_TREES)
def test_random_boolean_trees_match_a_python_model(rows: list[dict[str, Any]], tree: Any) -> None:
    db = sqlite3.connect(":memory:")
    db.execute('CREATE TABLE t (id INTEGER, "s" TEXT, "n" INTEGER, "b" INTEGER)')
    db.executemany(
        "INSERT INTO t VALUES (?, ?, ?, ?)",
        [(i, r["s"], r["n"], None if r["b"] is None else int(r["b"])) for i, r in enumerate(rows)],
    )
    where, params = compile_filter(_render(tree), _TREE_RESOLVER.__getitem__, dialect="dataverse")
    from_sql = {row[0] for row in db.execute(f"SELECT id FROM t WHERE {where}", params)}
    expected = {i for i, r in enumerate(rows) if _evaluate(tree, r) is True}
    assert from_sql == expected
