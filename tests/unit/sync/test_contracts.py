"""The engine's typed contracts: the keyword form names exactly the options, windows
normalize and refuse to be empty, and a call's keywords are laid over its objects."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

import pytest

from prospect_to_cash.sync.contracts import (
    WINDOW_ARGS,
    CompanyPair,
    SyncArgs,
    SyncOptions,
    Window,
    resolve,
)


def test_keyword_form_names_every_option_and_the_window() -> None:
    fields = {f.name for f in dataclasses.fields(SyncOptions)}
    assert set(SyncArgs.__annotations__) == fields | set(WINDOW_ARGS)


def test_window_ends_are_utc_text() -> None:
    berlin = timezone(timedelta(hours=1))
    window = Window.of(datetime(2026, 11, 1, 1, 0, tzinfo=berlin), "2026-11-02T00:00:00")
    assert window == Window("2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z", False)
    assert window.to_dict() == {"start": "2026-11-01T00:00:00Z", "end": "2026-11-02T00:00:00Z"}
    assert window.bounded


def test_explicit_ends_replace_the_data_interval() -> None:
    window = Window.of("2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z", end="2026-11-01T12:00:00+02:00")
    assert (window.start, window.end) == ("2026-11-01T00:00:00Z", "2026-11-01T10:00:00Z")


def test_open_and_full_refresh_windows_do_not_bound() -> None:
    assert not Window().bounded
    assert not Window("2026-11-01T00:00:00Z", None, full_refresh=True).bounded


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("2026-11-02T00:00:00Z", "2026-11-01T00:00:00Z", "empty change window"),
        ("2026-11-01T00:00:00Z", "2026-11-01T00:00:00Z", "empty change window"),
        ("yesterday", None, "yesterday"),
    ],
)
def test_bad_windows_are_refused(start: str, end: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Window.of(start, end)


def test_keywords_are_laid_over_the_objects() -> None:
    base = SyncOptions(run_id="r1", chunk_rows=10)
    options, window = resolve(base, None, {"dry_run": True, "data_interval_start": "2026-11-01T00:00:00Z"})
    assert options == SyncOptions(run_id="r1", chunk_rows=10, dry_run=True)
    assert window == Window("2026-11-01T00:00:00Z", None, False)
    assert resolve(base, None, {}) == (base, Window())


def test_unknown_or_missing_keywords_are_type_errors() -> None:
    with pytest.raises(TypeError, match="unknown sync option"):
        resolve(None, None, {"run_id": "r1", "stagingroot": "/tmp"})  # type: ignore[typeddict-unknown-key]
    with pytest.raises(TypeError, match="run_id"):
        resolve(None, None, {"dry_run": True})
    with pytest.raises(TypeError, match="either window"):
        resolve(SyncOptions(run_id="r1"), Window(), {"full_refresh": True})


def test_journal_every_must_be_positive() -> None:
    with pytest.raises(ValueError, match="journal_every must be at least 1"):
        SyncOptions(run_id="r1", journal_every=0)


def test_company_pair_round_trips_through_its_xcom_form() -> None:
    pair = CompanyPair("usmf", "Contoso US", None, "owner@contoso.com", defaults={"CustomerGroupId": "10"})
    assert pair.to_dict() == {
        "legal_entity": "usmf",
        "business_unit": "Contoso US",
        "business_unit_id": None,
        "owner": "owner@contoso.com",
    }
    assert CompanyPair.of(pair.to_dict()) == dataclasses.replace(pair, defaults={})
    assert CompanyPair.of("demf") == CompanyPair("demf")
    assert CompanyPair.of(pair) is pair
