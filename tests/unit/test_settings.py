"""The typed setting parsers (argument, else environment variable, else default) and the
settings that use them: staging retention, transform chunk size, run-order waits (numbers);
operator flags and the row-values debug switch (yes/no, strict and privacy-safe)."""

from __future__ import annotations

import re

import pytest
from airflow.sdk.exceptions import AirflowFailException

from prospect_to_cash.operators.common import flag
from prospect_to_cash.sensors.run_order import POKE_SECONDS, TIMEOUT_SECONDS
from prospect_to_cash.settings import FlagSetting, NumberSetting, bool_word
from prospect_to_cash.sync.privacy import ROW_VALUES, log_row_values
from prospect_to_cash.sync.retention import RETENTION
from prospect_to_cash.sync.staging import CHUNK_ROWS

ROWS = NumberSetting("chunk_rows", "P2C_TEST_ROWS", 50, "rows", 1)
SECONDS = NumberSetting("poke_interval", "P2C_TEST_SECONDS", 60.0, "seconds", 0.0, above=True)
STRICT = FlagSetting(name="dry_run", variable="P2C_TEST_FLAG", default=False, unknown="raise")
LENIENT = FlagSetting(name="debug", variable="P2C_TEST_FLAG", default=True, unknown="default")


def test_the_given_value_wins_then_the_variable_then_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("P2C_TEST_ROWS", raising=False)
    assert ROWS.read() == 50
    monkeypatch.setenv("P2C_TEST_ROWS", "  ")  # an empty variable is unset
    assert ROWS.read() == 50
    monkeypatch.setenv("P2C_TEST_ROWS", " 7 ")
    assert ROWS.read() == 7
    assert ROWS.read(3) == 3
    assert ROWS.read("4") == 4
    assert type(ROWS.read("4")) is int
    monkeypatch.setenv("P2C_TEST_SECONDS", "2.5")
    assert SECONDS.read() == 2.5
    assert SECONDS.read(1) == 1.0
    assert type(SECONDS.read(1)) is float


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        (ROWS, "seven", "chunk_rows (P2C_TEST_ROWS) must be a whole number of rows, got 'seven'"),
        (ROWS, 2.5, "chunk_rows (P2C_TEST_ROWS) must be a whole number of rows, got 2.5"),
        (ROWS, True, "chunk_rows (P2C_TEST_ROWS) must be a whole number of rows, got True"),
        (ROWS, "0", "chunk_rows (P2C_TEST_ROWS) must be at least 1 rows, got '0'"),
        (ROWS, -3, "chunk_rows (P2C_TEST_ROWS) must be at least 1 rows, got -3"),
        (SECONDS, "soon", "poke_interval (P2C_TEST_SECONDS) must be a number of seconds, got 'soon'"),
        (SECONDS, "0", "poke_interval (P2C_TEST_SECONDS) must be more than 0 seconds, got '0'"),
        (SECONDS, "-1", "poke_interval (P2C_TEST_SECONDS) must be more than 0 seconds, got '-1'"),
        (SECONDS, "nan", "poke_interval (P2C_TEST_SECONDS) must be a finite number of seconds, got 'nan'"),
        (SECONDS, "inf", "poke_interval (P2C_TEST_SECONDS) must be a finite number of seconds, got 'inf'"),
    ],
)
def test_a_wrong_value_names_the_setting_its_variable_and_the_value(
    setting: NumberSetting, value: object, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(setting.variable, "5")  # a good variable does not hide a bad argument
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        setting.read(value)  # type: ignore[arg-type]
    monkeypatch.setenv(setting.variable, str(value))
    with pytest.raises(ValueError, match=setting.variable):
        setting.read()


def test_the_packages_settings_share_the_parser() -> None:
    """Each numeric setting of the package, with its variable, default and bound."""
    assert [
        (s.variable, s.default, s.minimum, s.above)
        for s in (RETENTION, CHUNK_ROWS, POKE_SECONDS, TIMEOUT_SECONDS)
    ] == [
        ("P2C_STAGING_RETENTION_DAYS", 30, 1, False),
        ("P2C_TRANSFORM_CHUNK_ROWS", 50_000, 1, False),
        ("P2C_RUN_ORDER_POKE_SECONDS", 60.0, 0.0, True),
        ("P2C_RUN_ORDER_TIMEOUT_SECONDS", 21_600.0, 0.0, True),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        (" TRUE ", True),
        ("1", True),
        ("Yes", True),
        ("false", False),
        ("False\n", False),
        ("0", False),
        ("NO", False),
        ("on", None),
        ("off", None),
        ("maybe", None),
        ("", None),
        ("10", None),
    ],
)
def test_the_yes_no_words(text: str, expected: bool | None) -> None:
    assert bool_word(text) is expected


def test_a_flag_reads_the_given_value_then_the_variable_then_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("P2C_TEST_FLAG", raising=False)
    assert (STRICT.read(), LENIENT.read()) == (False, True)
    for unset in ("", "  ", "None"):  # blank, or an unset value as a template renders it
        monkeypatch.setenv("P2C_TEST_FLAG", unset)
        assert (STRICT.read(), LENIENT.read()) == (False, True)
    monkeypatch.setenv("P2C_TEST_FLAG", " yes ")
    assert (STRICT.read(), LENIENT.read()) == (True, True)
    monkeypatch.setenv("P2C_TEST_FLAG", "0")
    assert (STRICT.read(), LENIENT.read()) == (False, False)
    assert (STRICT.read(True), STRICT.read("TRUE"), STRICT.read(1)) == (True, True, True)
    monkeypatch.setenv("P2C_TEST_FLAG", "1")
    assert (STRICT.read(False), STRICT.read("no"), STRICT.read(0)) == (False, False, False)


@pytest.mark.parametrize("text", ["maybe", "on", "2"])
def test_unknown_text_raises_or_is_the_default_as_the_setting_chose(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    message = f"dry_run (P2C_TEST_FLAG) must be true or false, got {text!r}"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        STRICT.read(text)
    assert LENIENT.read(text) is True
    monkeypatch.setenv("P2C_TEST_FLAG", text)
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        STRICT.read()
    assert LENIENT.read() is True


def test_an_operator_flag_fails_the_task_on_unknown_text() -> None:
    """A typo in ``dry_run`` must not write: the task fails without retries."""
    assert (flag(None, "dry_run"), flag("None", "dry_run"), flag(" True ", "dry_run")) == (False, False, True)
    with pytest.raises(AirflowFailException, match=r"^dry_run must be true or false, got 'ture'$"):
        flag("ture", "dry_run")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, False),
        ("1", True),
        ("yes", True),
        ("TRUE", True),
        ("0", False),
        ("on", False),
        ("verbose", False),
    ],
)
def test_row_values_reach_logs_only_on_a_yes_word(
    text: str | None, expected: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unknown text keeps row values out of logs (privacy-safe) instead of failing the run."""
    assert (ROW_VALUES.variable, ROW_VALUES.default, ROW_VALUES.unknown) == (
        "P2C_LOG_ROW_VALUES",
        False,
        "default",
    )
    if text is None:
        monkeypatch.delenv("P2C_LOG_ROW_VALUES", raising=False)
    else:
        monkeypatch.setenv("P2C_LOG_ROW_VALUES", text)
    assert log_row_values() is expected
