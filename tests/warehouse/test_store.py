"""The state database: events load once, from the copy read first; appends are never lost."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl

from transforms import core
from warehouse.store import StateStore, changed_rows

AT_TEN = datetime(2026, 11, 23, 10)


def _errors(agents: list[str], times: list[datetime], kinds: list[str], order: list[int]):  # type: ignore[no-untyped-def]
    return pl.DataFrame(
        {
            "agent_id": agents,
            "ts": times,
            "task_type": [None] * len(agents),
            "error_type": kinds,
            "message": ["m"] * len(agents),
            "read_order": order,
        },
        schema={**core.FCT_AGENT_ERRORS, "read_order": pl.Int64},
    )


def test_an_event_delivered_twice_is_loaded_once_from_the_copy_read_first(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.duckdb")
    store.replace_table("core", "fct_agent_errors", core.empty("fct_agent_errors").collect())
    batch = _errors(
        ["a1", "a1", "a1", "a2"],
        [AT_TEN, datetime(2026, 11, 23, 10, 5), AT_TEN, AT_TEN],
        ["TimeoutError", "KeyError", "TimeoutError (copy)", "TimeoutError"],
        # The copy of a1's 10:00 error was read before the original.
        [5, 6, 2, 7],
    )
    kept = store.insert_new_events("fct_agent_errors", batch, core.EVENT_KEY)
    rows = store.query("SELECT * FROM core.fct_agent_errors ORDER BY agent_id, ts")
    store.close()
    assert kept == 3
    assert rows["error_type"].to_list() == ["TimeoutError (copy)", "KeyError", "TimeoutError"]
    assert "read_order" not in rows.columns


def test_an_event_already_loaded_by_an_earlier_batch_is_not_loaded_again(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.duckdb")
    store.replace_table("core", "fct_agent_errors", core.empty("fct_agent_errors").collect())
    first = _errors(["a1"], [AT_TEN], ["TimeoutError"], [1])
    later = _errors(
        ["a1", "a1"],
        [AT_TEN, datetime(2026, 11, 23, 11)],
        ["TimeoutError (copy)", "KeyError"],
        [9, 10],
    )
    assert store.insert_new_events("fct_agent_errors", first, core.EVENT_KEY) == 1
    assert store.insert_new_events("fct_agent_errors", later, core.EVENT_KEY) == 1
    rows = store.query("SELECT error_type FROM core.fct_agent_errors ORDER BY ts")
    store.close()
    assert rows["error_type"].to_list() == ["TimeoutError", "KeyError"]


def test_large_appends_after_an_empty_table_in_one_transaction_are_all_kept(
    tmp_path: Path,
) -> None:
    # DuckDB 1.5.5 drops the large appends that follow an append from an empty Arrow scan in
    # the same transaction; the store never scans an empty frame, so every row stays.
    store = StateStore(tmp_path / "state.duckdb")
    rows = 300_000  # more than two DuckDB row groups
    with store.transaction():
        store.replace_table("core", "t", pl.DataFrame(schema={"x": pl.Int64}))
        store.append_table("core", "t", pl.DataFrame(schema={"x": pl.Int64}))
        store.append_table("core", "t", pl.DataFrame({"x": range(rows)}))
        inside = store.scalar("SELECT count(*) FROM core.t")
    after = store.scalar("SELECT count(*) FROM core.t")
    store.close()
    assert (inside, after) == (rows, rows)


def test_the_log_manifest_answers_for_the_files_and_texts_asked_about(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.duckdb")
    read = pl.DataFrame(
        {
            "path": ["d1/a.jsonl", "d1/b.jsonl", "again/a.jsonl"],
            "size_bytes": [10, 20, 10],
            "checksum": ["ca", "cb", "ca"],
            "lines": [1, 2, 1],
            "copy_of": [None, None, "d1/a.jsonl"],
            "run_id": ["r1", "r1", "r2"],
            "read_at": [AT_TEN] * 3,
        }
    )
    store.add_log_files(read)
    assert store.log_files_read(["d1/b.jsonl", "d2/c.jsonl", "again/a.jsonl"]) == {
        "d1/b.jsonl",
        "again/a.jsonl",
    }
    assert store.log_files_read([]) == set()
    # A text read twice is named by the file it was first read from, never by its copy.
    assert store.log_texts_read(["ca", "cb", "cc"]) == {"ca": "d1/a.jsonl", "cb": "d1/b.jsonl"}
    assert store.log_texts_read([]) == {}
    store.close()


def _alerts(days: list[int], values: list[float | None]) -> pl.DataFrame:
    """marts.alerts rows (its key and one figure) of agent a on 2026-01-<day>."""
    return pl.DataFrame(
        {
            "period_start": [date(2026, 1, d) for d in days],
            "agent_id": ["a"] * len(days),
            "metric": ["error_rate"] * len(days),
            "level": ["warning"] * len(days),
            "value": values,
        }
    )


def test_marts_are_brought_up_to_date_by_rewriting_only_the_rows_that_changed(
    tmp_path: Path,
) -> None:
    store = StateStore(tmp_path / "state.duckdb")
    store.replace_marts({"alerts": _alerts([1, 2, 3, 4, 6], [0.5, 0.4, None, 0.1, 0.3])})
    # Day 2 changed, day 3 unchanged (NULL), day 4 gone, day 5 new, days 1 and 6 unchanged.
    after = _alerts([1, 2, 3, 5, 6], [0.5, 0.9, None, 0.2, 0.3])
    store.replace_marts({"alerts": after})
    stored = [v for (v,) in store.con.execute("SELECT value FROM marts.alerts").fetchall()]
    read = store.marts()["alerts"]
    store.close()
    # In the order they were stored: the unchanged rows where they were, the changed and
    # new ones after them (a table written whole would be in the order of its key).
    assert stored == [0.5, None, 0.3, 0.9, 0.2]
    # Read back in the order of the key.
    assert read.equals(after)


def test_a_mart_whose_columns_changed_is_replaced_whole_with_its_comments(
    tmp_path: Path,
) -> None:
    store = StateStore(tmp_path / "state.duckdb")
    store.replace_marts({"alerts": _alerts([1], [0.5]).drop("value")})
    store.replace_marts({"alerts": _alerts([1, 2], [0.5, 0.7])})
    rows = store.query("SELECT * FROM marts.alerts ORDER BY period_start")
    comment = store.scalar(
        "SELECT comment FROM duckdb_columns() WHERE table_name = 'alerts' AND column_name = 'value'"
    )
    store.close()
    assert rows.equals(_alerts([1, 2], [0.5, 0.7]))
    assert comment


def test_changed_rows_are_those_that_differ_in_any_column_nulls_equal() -> None:
    before = pl.DataFrame({"k": [1, 2, 3, 4], "v": [1.0, None, float("nan"), 4.0]})
    after = pl.DataFrame({"k": [1, 2, 3, 5], "v": [1.5, None, float("nan"), 5.0]})
    stale, added = changed_rows(before, after, ["k"])
    assert sorted(stale["k"].to_list()) == [1, 4]
    assert added.sort("k").rows() == [(1, 1.5), (5, 5.0)]


def test_stage_timings_are_stamped_and_a_state_from_before_the_stamp_gains_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.duckdb"
    store = StateStore(path)
    store.con.execute("ALTER TABLE ops.stage_timings DROP COLUMN recorded_at")
    store.con.execute("INSERT INTO ops.stage_timings VALUES ('old', 'publish', 0.1, NULL, NULL)")
    store.close()
    store = StateStore(path)  # as a version without recorded_at left it
    store.record_timings(pl.DataFrame({"run_id": ["r1"], "stage": ["publish"], "seconds": [0.2]}))
    store.record_timings(
        pl.DataFrame({"run_id": ["r2"], "stage": ["publish"], "seconds": [0.3]}), at=AT_TEN
    )
    rows = store.con.execute(
        "SELECT run_id, recorded_at FROM ops.stage_timings ORDER BY run_id"
    ).fetchall()
    assert [(run, at is None) for run, at in rows] == [("old", True), ("r1", False), ("r2", False)]
    assert rows[2][1] == AT_TEN
    now = datetime.now(UTC).replace(tzinfo=None)
    assert abs((now - rows[1][1]).total_seconds()) < 3600  # now, in UTC
