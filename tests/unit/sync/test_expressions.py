"""The safe expression language: what it computes, and what it refuses to parse."""

from __future__ import annotations

from decimal import Decimal

import pytest

from prospect_to_cash.sync.expressions import Expression, ExpressionError


def value(text: str, **row: object) -> object:
    return Expression(text, environment={"defaults": {"country": "US"}}).evaluate_one(row)


class TestDiscountRule:
    """Template 6: 10.00 discount on 3 units → 3.33 per unit and a -0.01 charge; back = 10.00."""

    def test_unit_discount_rounds_to_cents(self) -> None:
        assert value("unit_discount(total, qty)", total=10.00, qty=3) == Decimal("3.33")

    def test_rounding_rest_becomes_negative_charge(self) -> None:
        assert value("discount_rounding_charge(total, qty)", total=10.00, qty=3) == Decimal("-0.01")

    def test_reverse_direction_rebuilds_the_line_discount(self) -> None:
        assert value("line_discount(unit, qty, charge)", unit=3.33, qty=3, charge=-0.01) == Decimal("10.00")

    def test_even_split_has_no_charge(self) -> None:
        assert value("discount_rounding_charge(total, qty)", total="9.00", qty="3") == Decimal("0.00")

    def test_half_cent_rounds_up(self) -> None:
        assert value("unit_discount(total, qty)", total=0.05, qty=2) == Decimal("0.03")

    def test_zero_quantity_keeps_the_amount(self) -> None:
        assert value("unit_discount(total, qty)", total=5, qty=0) == Decimal("5.00")

    def test_blank_discount_stays_blank(self) -> None:
        assert value("unit_discount(total, qty)", total=None, qty=3) is None


class TestOperators:
    def test_arithmetic_is_decimal_exact(self) -> None:
        assert value("qty * price", qty=3, price=3.33) == Decimal("9.99")

    def test_null_propagates_through_arithmetic(self) -> None:
        assert value("qty * price", qty=None, price=3) is None

    def test_string_plus_concatenates(self) -> None:
        assert value("a + '-' + b", a="ACC", b="01") == "ACC-01"

    def test_concat_and_join_skip_blanks(self) -> None:
        assert value("concat(a, ' ', b)", a="Jane", b=None) == "Jane "
        assert value("join(', ', a, b, c)", a="Main St 1", b="", c="Suite 2") == "Main St 1, Suite 2"
        assert value("concat(a, b)", a=None, b="") is None

    @pytest.mark.parametrize(
        ("flag", "expected"), [(True, True), ("true", True), (1, True), (False, False), (None, False)]
    )
    def test_boolean_comparison_accepts_any_spelling(self, flag: object, expected: bool) -> None:
        assert value("flag == true", flag=flag) is expected

    def test_ne_true_includes_null(self) -> None:
        assert value("flag != true", flag=None) is True

    def test_in_list(self) -> None:
        assert value("code in [1, 2]", code="2") is True
        assert value("code not in [1, 2]", code=3) is True

    def test_conditional_and_env(self) -> None:
        assert value("country if not is_blank(country) else env('defaults.country')", country="") == "US"

    def test_noyes_and_is_yes(self) -> None:
        assert value("noyes(not donotemail)", donotemail=None) == "Yes"
        assert value("noyes(flag)", flag=False) == "No"
        assert value("is_yes(x)", x="Yes") is True

    def test_fno_date_reads_sentinel_as_null(self) -> None:
        assert value("fno_date(d)", d="1900-01-01T12:00:00Z") is None
        assert value("fno_date(d)", d="2024-03-01T00:00:00Z") == "2024-03-01T00:00:00Z"

    def test_ordering_compares_numbers_as_numbers(self) -> None:
        assert value("a > b", a="10", b=9) is True


class TestRefused:
    @pytest.mark.parametrize(
        "text",
        [
            "__import__('os').system('true')",
            "a.__class__",
            "a[0]",
            "(lambda: 1)()",
            "[x for x in a]",
            "open('/etc/passwd')",
            "eval('1')",
            "a ** 2",
            "a // 2",
            "f'{a}'",
            "round(a, ndigits=2)",
            "a < b < c",
            "x in y",
            "env(path)",
        ],
    )
    def test_not_allowed(self, text: str) -> None:
        with pytest.raises(ExpressionError):
            Expression(text, environment={})

    def test_unknown_environment_path_fails_at_compile_time(self) -> None:
        with pytest.raises(ExpressionError, match=r"no value at 'defaults\.nope'"):
            Expression("env('defaults.nope')", environment={"defaults": {}})

    def test_unknown_column_fails_at_evaluation(self) -> None:
        with pytest.raises(ExpressionError, match="unknown column"):
            Expression("missing + 1").evaluate({}, 1)

    def test_bad_row_gives_an_error_for_that_row_only(self) -> None:
        values, errors = Expression("int(a)").evaluate({"a": ["1", "x1", "3"]}, 3)
        assert values == [1, None, 3]
        assert list(errors) == [1]


class TestEvaluatedOncePerDistinctInput:
    def test_repeated_inputs_are_evaluated_once_and_told_apart_by_class(self) -> None:
        # True, 1 and 1.0 are one dict key, but text of them differs: the memo must not mix them
        column = [True, 1, 1.0, "1", True, None, 1]
        values, errors = Expression("concat(a, '!')").evaluate({"a": column}, len(column))
        assert values == ["true!", "1!", "1!", "1!", "true!", "!", "1!"]
        assert errors == {}

    def test_memo_gives_way_to_mostly_distinct_inputs(self) -> None:
        column = [str(n) for n in range(5000)] + ["x"]
        values, errors = Expression("int(a) + 1").evaluate({"a": column}, len(column))
        assert values[:3] == [1, 2, 3]
        assert values[4999] == 5000
        assert list(errors) == [5000]

    def test_an_expression_without_columns_fails_for_every_row_alike(self) -> None:
        values, errors = Expression("int('x')").evaluate({}, 3)
        assert values == [None, None, None]
        assert sorted(errors) == [0, 1, 2]
        assert Expression("1 + 2").evaluate({}, 0) == ([], {})
