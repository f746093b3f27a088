"""The one parser of numeric settings (argument, else environment variable, else default)
and the settings that use it: staging retention, transform chunk size, run-order waits."""

from __future__ import annotations

import re

import pytest

from prospect_to_cash.sensors.run_order import POKE_SECONDS, TIMEOUT_SECONDS
from prospect_to_cash.settings import NumberSetting
from prospect_to_cash.sync.retention import RETENTION
from prospect_to_cash.sync.staging import CHUNK_ROWS

ROWS = NumberSetting("chunk_rows", "P2C_TEST_ROWS", 50, "rows", 1)
SECONDS = NumberSetting("poke_interval", "P2C_TEST_SECONDS", 60.0, "seconds", 0.0, above=True)


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
