"""The reads that complete a window's keys (sync/key_rules.py): which keys, which filters."""

from __future__ import annotations

import pandas as pd

from prospect_to_cash.sync.key_rules import KEYS_PER_READ, KeySharers, key_filters

SCOPE = ("statecode eq 0", "modifiedon lt 2026-11-02T00:00:00Z or modifiedon ge 2026-11-03T00:00:00Z", None)


def test_the_window_keys_are_read_outside_the_window_once_each_blanks_and_pending_keys_left_out() -> None:
    sharers = KeySharers.of(["accountnumber"], SCOPE, pending=[["ACC-3"]])
    sharers.observe(pd.DataFrame({"accountnumber": ["ACC-1", "acc-1", None, "  ", "ACC-2", "ACC-3"]}))
    sharers.observe(pd.DataFrame({"accountnumber": ["ACC-2", "O'Neil"]}))

    assert sharers.filters() == [
        "(statecode eq 0) and (modifiedon lt 2026-11-02T00:00:00Z or modifiedon ge 2026-11-03T00:00:00Z)"
        " and ((accountnumber eq 'ACC-1') or (accountnumber eq 'ACC-2') or (accountnumber eq 'O''Neil'))"
    ]


def test_a_window_without_keys_reads_nothing_more() -> None:
    sharers = KeySharers.of(["accountnumber"], SCOPE, pending=[])
    sharers.observe(pd.DataFrame({"accountnumber": pd.Series([], dtype=object)}))
    assert sharers.filters() == []


def test_compound_keys_are_chunked_per_read() -> None:
    keys = [[f"SO-{n}", n] for n in range(KEYS_PER_READ + 1)]
    filters = key_filters(["ordernumber", "sequencenumber"], keys, None, "x eq 1")
    assert len(filters) == 2
    assert filters[1] == "(x eq 1) and (((ordernumber eq 'SO-40') and (sequencenumber eq 40)))"
    assert filters[0].count(" or ") == KEYS_PER_READ - 1


def test_a_delta_reads_its_keys_other_rows_without_the_rows_in_hand() -> None:
    ours = "5A1F3C2E-0000-4000-8000-000000000001"
    twin = "5a1f3c2e-0000-4000-8000-000000000002"
    sharers = KeySharers.of(["accountnumber"], ("statecode eq 0", None), pending=[], primary_id="accountid")
    sharers.observe(
        pd.DataFrame({"accountnumber": ["ACC-1", "acc-1", "ACC-2"], "accountid": [ours, twin, None]})
    )

    assert sharers.filters() == [
        "(statecode eq 0) and ((accountnumber eq 'ACC-1') or (accountnumber eq 'ACC-2'))"
        f" and (accountid ne {ours.lower()}) and (accountid ne {twin})"
    ]
