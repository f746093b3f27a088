"""The shared delta's segments (sync/delta_chain.py) on a local staging root: created once
whoever races for them, read by one pair while the other waits, removed once consumed."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pandas as pd

from prospect_to_cash.sync.delta_chain import DeltaChain, create_once, forget, new_info, segment

if TYPE_CHECKING:
    import pytest
    from airflow.sdk import ObjectStoragePath

    from prospect_to_cash.sync.delta_chain import SegmentInfo
    from prospect_to_cash.sync.staging import TextPageWriter


def pair(company: str, run_id: str = "day-1") -> Any:
    return SimpleNamespace(run_id=run_id, pair=SimpleNamespace(legal_entity=company))


def test_a_segment_is_created_once_and_never_replaced(staging_root: ObjectStoragePath) -> None:
    target = staging_root / "_deltas" / "t" / "once.json"
    assert create_once(target, "first") is True
    assert create_once(target, "second") is False
    with target.open("r") as handle:
        assert handle.read() == "first"
    assert [p.name for p in target.parent.iterdir()] == ["once.json"]  # no temporary file left


def test_two_pairs_racing_for_a_segment_read_it_once_and_see_the_same_rows(
    staging_root: ObjectStoragePath,
) -> None:
    chain = DeltaChain(staging_root, "accounts", "customers", "c")
    reads: list[str] = []

    def reader(company: str) -> Any:
        def read(writer: TextPageWriter | None) -> SegmentInfo:
            assert writer is not None
            reads.append(company)
            time.sleep(0.3)  # the other pair arrives meanwhile and waits for the .json
            writer.write(pd.DataFrame({"accountid": [f"id-{company}"]}))
            return new_info(pair(company), "token-1", 1, ["GONE-1"])

        return read

    results: dict[str, int] = {}
    threads = [
        threading.Thread(
            target=lambda c=company: results.__setitem__(
                c, segment(pair(c), chain, 0, reader(c), columns=["accountid"])
            )
        )
        for company in ("usmf", "demf")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results == {"usmf": 0, "demf": 0}
    assert len(reads) == 1
    info = chain.info(0)
    assert (info["reader"], info["token"], info["deleted_ids"]) == (reads[0], "token-1", ["gone-1"])
    assert [page["accountid"].tolist() for page in chain.pages(info)] == [[f"id-{reads[0]}"]]
    assert not chain.path(0, ".claim").exists()


def _three_segments(chain: DeltaChain) -> None:
    """Segments 0, 1 and 2 of ``chain``, read by usmf on three days (tokens t0..t2)."""
    for seq in range(3):
        segment(
            pair("usmf", f"day-{seq}"),
            chain,
            seq,
            lambda _, seq=seq: new_info(pair("usmf"), f"t{seq}", 0, ()),
            columns=None,
        )


def test_segments_every_pair_consumed_go_the_head_stays(staging_root: ObjectStoragePath) -> None:
    chain = DeltaChain(staging_root, "accounts", "customers", "c")
    _three_segments(chain)
    assert forget(chain, [1, 2]) == 1  # demf still needs what follows 1
    assert chain.segments() == [1, 2]
    assert forget(chain, [5]) == 1
    assert chain.segments() == [2]  # the head: the next delta starts at its token
    assert forget(chain, []) == 0


def test_two_pairs_forgetting_together_do_not_fail_on_each_other(
    staging_root: ObjectStoragePath, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both pairs' loads finish at once and clean up: the second finds segment 0 listed but
    already removed by the first (seen in bench daily at 20k: a finished contacts load
    failed with FileNotFoundError on the removed segment's .json)."""
    chain = DeltaChain(staging_root, "contacts", "contact_customers", "c")
    _three_segments(chain)
    listed = chain.segments()
    assert forget(chain, [2, 2]) == 2  # demf's cleanup: 0 and 1 go
    monkeypatch.setattr(DeltaChain, "segments", lambda self: listed)  # usmf listed them before
    assert forget(chain, [2, 2]) == 0
    monkeypatch.undo()
    assert chain.segments() == [2]
