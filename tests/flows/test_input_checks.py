"""The input checks' own work in DuckDB: which core rows GX is handed (a spread-out sample
of a large table, or the days a run touched), and the exact count of repeated keys."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from warehouse.store import StateStore


def test_the_exact_key_check_counts_extra_rows_of_repeated_keys(tmp_path: Path) -> None:
    from flows.pipeline import _keys_unique

    store = StateStore(tmp_path / "state.duckdb")
    try:
        store.con.execute(
            "CREATE TABLE core.fct_heartbeats AS SELECT * FROM (VALUES "
            "('a', TIMESTAMP '2026-01-01 00:00'), ('a', TIMESTAMP '2026-01-01 00:00'), "
            "('a', TIMESTAMP '2026-01-01 00:00'), ('b', TIMESTAMP '2026-01-02 00:00'), "
            "('b', TIMESTAMP '2026-01-03 00:00')) AS t(agent_id, ts)"
        )
        whole = _keys_unique(store, "fct_heartbeats", "core.fct_heartbeats", ["agent_id", "ts"], 5)
        day = "(SELECT * FROM core.fct_heartbeats WHERE ts >= TIMESTAMP '2026-01-02')"
        clean = _keys_unique(store, "fct_heartbeats", day, ["agent_id", "ts"], 2)
    finally:
        store.close()
    assert not whole.success and whole.observed.startswith("2 repeated keys")
    assert clean.success


def _heartbeat_keys(store: StateStore, rows: int, per_minute: int) -> None:
    """core.fct_heartbeats with only its key: `rows` beats of three agents in turn from
    2026-01-01, `per_minute` to a minute (above three, an agent beats twice in a minute: a
    repeated key)."""
    store.con.execute(
        "CREATE TABLE core.fct_heartbeats AS SELECT 'agent-' || (i % 3) AS agent_id, "
        f"TIMESTAMP '2026-01-01' + INTERVAL (i // {per_minute}) MINUTE AS ts "
        f"FROM range({rows}) AS r(i)"
    )


def test_the_exact_key_check_in_parts_by_hash_counts_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows import pipeline

    store = StateStore(tmp_path / "state.duckdb")
    try:
        _heartbeat_keys(store, rows=3000, per_minute=5)
        expected = store.scalar(
            "SELECT count(*) - count(DISTINCT (agent_id, ts)) FROM core.fct_heartbeats"
        )
        keys = ["agent_id", "ts"]
        at_once = pipeline._keys_unique(store, "fct_heartbeats", "core.fct_heartbeats", keys, 3000)
        monkeypatch.setattr(pipeline, "KEY_CHECK_ROWS", 400)  # 8 parts
        in_parts = pipeline._keys_unique(store, "fct_heartbeats", "core.fct_heartbeats", keys, 3000)
    finally:
        store.close()
    assert expected > 0
    assert at_once.observed == in_parts.observed == f"{expected} repeated keys in 3000 rows"


def test_keys_that_share_a_hash_are_not_counted_as_repeated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The check groups the keys' hash first; with a hash of four values, distinct keys
    # share hashes all the time, and only the grouping by the keys themselves may count.
    from flows import pipeline

    monkeypatch.setattr(pipeline, "KEY_HASH", "hash({columns}) % 4")
    store = StateStore(tmp_path / "state.duckdb")
    try:
        _heartbeat_keys(store, rows=100, per_minute=1)
        keys = ["agent_id", "ts"]
        unique = pipeline._keys_unique(store, "fct_heartbeats", "core.fct_heartbeats", keys, 100)
        store.con.execute(
            "INSERT INTO core.fct_heartbeats SELECT * FROM core.fct_heartbeats WHERE ts < "
            "TIMESTAMP '2026-01-01 00:03'"
        )
        repeated = pipeline._keys_unique(store, "fct_heartbeats", "core.fct_heartbeats", keys, 103)
    finally:
        store.close()
    assert unique.success and unique.observed == "0 repeated keys in 100 rows"
    assert not repeated.success and repeated.observed == "3 repeated keys in 103 rows"


def test_a_checked_task_whose_id_repeats_on_an_unchecked_day_is_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A task's key (task_id) holds no moment: the checked days' ids are looked for in the
    # whole table, where the other copy may lie on a day this run does not check.
    from datetime import date

    from flows import pipeline

    store = StateStore(tmp_path / "state.duckdb")
    monkeypatch.setattr(pipeline, "STAGED_SAMPLE_ROWS", 10)  # checked rows are sampled for GX
    monkeypatch.setattr(pipeline, "validate_staged", lambda staged: [])
    try:
        # 100 tasks a day on 1 and 2 January (ids 1 to 200), and id 150 again on the 3rd.
        store.con.execute(
            "CREATE TABLE core.fct_task_runs AS SELECT i AS task_id, TIMESTAMP '2026-01-01' "
            "+ INTERVAL ((i - 1) // 100) DAY + INTERVAL (i) MINUTE AS completed_at "
            "FROM range(1, 201) AS r(i) UNION ALL SELECT 150, TIMESTAMP '2026-01-03'"
        )
        first, second, third = (
            pipeline.validate_input(store, pl.Series([date(2026, 1, d)])) for d in (1, 2, 3)
        )
    finally:
        store.close()
    assert [c.observed for c in first] == ["0 repeated keys in 100 rows"]
    assert [c.observed for c in second] == ["1 repeated keys in 100 rows"]
    assert [c.observed for c in third] == ["1 repeated keys in 1 rows"]


def _heartbeats_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, minutes_apart: int
) -> tuple[StateStore, list[pl.DataFrame]]:
    """A state holding 1000 heartbeats of one agent from 2026-11-01, `minutes_apart` apart,
    with GX sampling 100 rows; the list gets the heartbeats each input check hands to GX."""
    from datetime import datetime, timedelta

    from flows import pipeline
    from transforms import core

    store = StateStore(tmp_path / "state.duckdb")
    start = datetime(2026, 11, 1)
    beats = pl.DataFrame(
        {
            "agent_id": ["a"] * 1000,
            "ts": [start + timedelta(minutes=minutes_apart * i) for i in range(1000)],
            "status": ["online"] * 1000,
            "task_queue": [0] * 1000,
            "message_queue": [0] * 1000,
            "current_task_type": [None] * 1000,
        },
        schema=core.FCT_HEARTBEATS,
    )
    store.append_table("core", "fct_heartbeats", beats)
    monkeypatch.setattr(pipeline, "STAGED_SAMPLE_ROWS", 100)
    checked: list[pl.DataFrame] = []
    monkeypatch.setattr(
        pipeline, "validate_staged", lambda staged: checked.append(staged["fct_heartbeats"]) or []
    )
    return store, checked


def test_a_large_core_table_is_checked_on_the_same_spread_out_sample_every_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import timedelta

    from flows import pipeline

    store, checked = _heartbeats_checked(tmp_path, monkeypatch, minutes_apart=1)
    first = pipeline.validate_input(store)
    pipeline.validate_input(store)
    store.close()
    sample, again = checked
    assert sample.height == 100
    assert sample.equals(again)
    minutes = sample["ts"].sort().diff().drop_nulls().unique().to_list()
    assert minutes == [timedelta(minutes=10)]  # every 10th row: spread over the whole table
    assert [c.success for c in first] == [True]  # the key is checked on every row


def test_checked_days_that_hold_every_row_are_checked_as_the_whole_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A backfill of the whole history checks every day: the table is then sampled by rowid
    # and its keys grouped whole, as in a full run, not through a reservoir and a join.
    from datetime import date, timedelta

    from flows import pipeline

    store, checked = _heartbeats_checked(tmp_path, monkeypatch, minutes_apart=2)
    both_days = pipeline.validate_input(store, pl.Series([date(2026, 11, 1), date(2026, 11, 2)]))
    first_day = pipeline.validate_input(store, pl.Series([date(2026, 11, 1)]))
    store.close()
    whole, part = checked
    assert whole["ts"].sort().diff().drop_nulls().unique().to_list() == [timedelta(minutes=20)]
    assert part["ts"].dt.date().unique().to_list() == [date(2026, 11, 1)]
    assert [c.observed for c in both_days] == ["0 repeated keys in 1000 rows"]
    assert [c.observed for c in first_day] == ["0 repeated keys in 720 rows"]
