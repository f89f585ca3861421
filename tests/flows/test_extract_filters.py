"""What an incremental extract reads of a source table: rows past an id, or rows changed since
a moment (and the rows whose updated_at no watermark can place: every time, or once they were
read, only when new)."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from itertools import pairwise
from pathlib import Path

import duckdb
import pytest

from flows import extract
from flows.extract import RowFilter
from tests.support.platform_builder import write_database

UPDATED = {
    1: "2026-10-01 08:00:00",  # long before: not read
    2: "2026-10-29 23:59:59",  # before the cutoff day: not read
    3: "2026-10-30 00:00:00",  # the cutoff day (the watermark less the margins): read
    4: "2026-10-31T09:00:00+02:00",  # after, with an offset: read
    5: None,  # no date: read every time
    6: "yesterday",  # not a date: read every time
    7: "",  # empty: read every time
    8: "0026-01-01",  # a date, however odd, before the cutoff: not read
    9: 1700000000,  # a number (SQLite keeps it as one): not a date, read every time
}


# 14 h of margin for offsets, then the whole day: the cutoff is 2026-10-30.
SINCE = datetime(2026, 10, 30, 12, 0) + extract.OFFSET_MARGIN
# Rows up to id 6 were read before.
READ_UP_TO_6 = RowFilter(changed_since=SINCE, read_up_to_id=6)


def _messages(tmp_path: Path) -> str:
    rows = [
        {"id": i, "message_id": f"m{i}", "sender_agent_id": "a", "updated_at": updated}
        for i, updated in UPDATED.items()
    ]
    return write_database(tmp_path / "src.db", {"agent_communications": rows})


def _ids(url: str, rows: RowFilter) -> list[int]:
    con = extract.open_source(url)
    try:
        frame = extract.read_table(con, "agent_communications", rows)
    finally:
        con.close()
    return sorted(int(i) for i in frame["id"])


def _scanned(con: duckdb.DuckDBPyConnection, rows: RowFilter) -> list[int]:
    """The ids a streamed read of the messages (in batches of 2) finds."""
    batches = extract.iter_table(con, "agent_communications", 2, rows)
    return sorted(int(i) for batch in batches for i in batch["id"])


def test_rows_changed_since_a_moment_and_rows_no_watermark_can_place(tmp_path: Path) -> None:
    url = _messages(tmp_path)
    assert (SINCE - extract.OFFSET_MARGIN).date().isoformat() == "2026-10-30"
    assert _ids(url, RowFilter(changed_since=SINCE)) == [3, 4, 5, 6, 7, 9]


def test_once_every_row_up_to_an_id_was_read_only_those_past_it_are_read_whatever_their_date(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = _messages(tmp_path)
    rows = READ_UP_TO_6
    # In the window (3, 4; "yesterday" sorts after every date: 6), or new (7, 8, 9). No
    # longer read: 5, whose NULL was read (and quarantined) when it was new.
    assert _ids(url, rows) == [3, 4, 6, 7, 8, 9]
    # The same in parts.
    con = extract.open_source(url)
    try:
        for parts in (1, 2, 3):
            monkeypatch.setattr(extract, "SCAN_PARTS", parts)
            assert _scanned(con, rows) == [3, 4, 6, 7, 8, 9]
    finally:
        con.close()
    # Nothing read yet (no id recorded): every row that no watermark can place, as above.
    assert _ids(url, RowFilter(changed_since=SINCE, read_up_to_id=None)) == [3, 4, 5, 6, 7, 9]


def test_an_index_on_updated_at_serves_the_search_in_one_part_with_the_same_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = _messages(tmp_path)
    rows = READ_UP_TO_6
    monkeypatch.setattr(extract, "SCAN_PARTS", 2)
    con = extract.open_source(url)
    try:
        assert not extract.indexed_by(con, "agent_communications", "updated_at")
        assert len(extract._id_ranges(con, "agent_communications")) == 2
    finally:
        con.close()
    path = url.removeprefix("sqlite:///")
    source = sqlite3.connect(path)
    source.execute("CREATE INDEX by_update ON agent_communications (updated_at, status)")
    source.commit()
    # SQLite looks the rows up: past the id by rowid, in the window by the index.
    query = f"SELECT * FROM agent_communications {rows.sql()}"
    plan = " | ".join(row[-1] for row in source.execute(f"EXPLAIN QUERY PLAN {query}"))
    source.close()
    assert "MULTI-INDEX OR" in plan and "USING INDEX by_update" in plan, plan
    con = extract.open_source(url)
    try:
        assert extract.indexed_by(con, "agent_communications", "updated_at")
        assert extract._id_ranges(con, "agent_communications") == [(None, None)]
        assert _scanned(con, rows) == [3, 4, 6, 7, 8, 9]
    finally:
        con.close()


def test_rows_past_an_id_in_id_order(tmp_path: Path) -> None:
    url = _messages(tmp_path)
    assert _ids(url, RowFilter(after_id=5, by_id=True)) == [6, 7, 8, 9]
    assert _ids(url, RowFilter()) == list(UPDATED)


def test_a_scan_for_changed_rows_in_parts_reads_each_row_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = _messages(tmp_path)
    con = extract.open_source(url)
    try:
        for parts in (1, 2, 3, 9, 20):
            monkeypatch.setattr(extract, "SCAN_PARTS", parts)
            ranges = extract._id_ranges(con, "agent_communications")
            assert len(ranges) == parts
            # The first range has no lower bound, the last no upper one, and each starts
            # where the one before ends.
            assert ranges[0][0] is None and ranges[-1][1] is None
            assert all(a[1] == b[0] for a, b in pairwise(ranges))
            batches = list(
                extract.iter_table(con, "agent_communications", 2, RowFilter(changed_since=SINCE))
            )
            ids = [int(i) for batch in batches for i in batch["id"]]
            assert sorted(ids) == [3, 4, 5, 6, 7, 9]
            assert all(batch.height <= 2 for batch in batches)
    finally:
        con.close()


def test_a_table_without_rows_is_scanned_in_one_part(tmp_path: Path) -> None:
    url = write_database(tmp_path / "empty.db", {"agent_communications": []})
    con = extract.open_source(url)
    try:
        assert extract._id_ranges(con, "agent_communications") == [(None, None)]
        assert (
            list(
                extract.iter_table(con, "agent_communications", 10, RowFilter(changed_since=SINCE))
            )
            == []
        )
    finally:
        con.close()


def test_a_search_for_changed_rows_starts_when_made_and_stops_when_closed(
    tmp_path: Path,
) -> None:
    import threading

    url = _messages(tmp_path)
    con = extract.open_source(url)

    def scanning() -> set[str]:
        return {t.name for t in threading.enumerate() if t.name.startswith("agent_comm")}

    try:
        rows = RowFilter(changed_since=SINCE)
        assert extract.ChangedRowsScan.serves("agent_communications", rows)
        assert not extract.ChangedRowsScan.serves("workflow_executions", rows)  # no id
        assert not extract.ChangedRowsScan.serves("agent_communications", RowFilter())
        # Batches of one row: each part has more to hand over than it may keep ready, so
        # its thread is still there, waiting, when looked for.
        scan = extract.ChangedRowsScan(con, "agent_communications", 1, rows)
        assert scanning()  # reading before anyone asks for a batch
        ids = sorted(int(i) for batch in scan for i in batch["id"])
        assert ids == [3, 4, 5, 6, 7, 9]
        scan.close()
        idle = extract.ChangedRowsScan(con, "agent_communications", 1, rows)
        idle.close()  # never iterated: its threads stop all the same
        assert not scanning()
    finally:
        con.close()


def test_bytes_that_are_not_utf8_text_reach_quarantine_escaped(tmp_path: Path) -> None:
    import sqlite3

    import polars as pl

    from flows.pipeline import _stage_tasks
    from quality.rules import RuleContext

    task = {"agent_id": "a", "department": "finance", "task_type": "t", "execution_time": 1.5}
    task |= {"success_rate": 100.0, "timestamp": "2026-10-30 08:00:00"}
    rows = [
        {"id": 1, **task},
        {"id": 2, **task, "agent_id": b"\xffa"},  # a BLOB in a TEXT column
        {"id": 3, **task},
        {"id": 4, **task, "task_type": "caf\u00e9"},  # UTF-8 beyond ASCII: text, and valid
    ]
    url = write_database(tmp_path / "src.db", {"agent_performance": rows})
    with sqlite3.connect(extract.sqlite_path(url)) as db:  # text whose bytes are not UTF-8
        db.execute("UPDATE agent_performance SET department = CAST(x'c328' AS TEXT) WHERE id = 3")
    con = extract.open_source(url)
    try:
        for read in (
            extract.read_table(con, "agent_performance"),
            *extract.iter_table(con, "agent_performance", 10, RowFilter(after_id=0, by_id=True)),
        ):
            assert read["agent_id"].to_list() == ["a", "\\xffa", "a", "a"]
            assert read["department"].to_list() == ["finance", "finance", "\\xc3(", "finance"]
            assert read["task_type"][3] == "caf\u00e9"
            assert read[extract.NOT_UTF8].to_list() == [None, "agent_id", "department", None]
        agents = pl.DataFrame({"agent_id": ["a"], "department": ["finance"]})
        ctx = RuleContext(datetime(2026, 11, 1), agents["agent_id"])
        valid, bad, facts = _stage_tasks(read, ctx, agents)
        assert valid["id"].to_list() == ["1", "4"] and facts.height == 2
        assert extract.NOT_UTF8 not in facts.columns
        assert bad["location"].to_list() == ["agent_performance id=2", "agent_performance id=3"]
        assert set(bad["rule"]) == {"wrong_type"}
        assert '"agent_id":"\\\\xffa"' in bad["raw_payload"][0]
        # A batch of valid text gets no such column.
        clean = extract.read_table(con, "agent_performance", RowFilter(after_id=3, by_id=True))
        assert extract.NOT_UTF8 not in clean.columns
    finally:
        con.close()
