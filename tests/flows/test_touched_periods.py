"""Which periods an incremental run recomputes (flows.pipeline.requested_periods)."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import polars as pl

from flows.pipeline import (
    BOUNDING_MOMENTS,
    PERIOD_MART_NAMES,
    Touched,
    activity_bounds,
    day_ranges,
    latest_heartbeats,
    requested_periods,
    warehouse_as_of,
)
from transforms import core
from warehouse.store import StateStore


def _before(first: date, last: date) -> dict[str, pl.DataFrame]:
    days = pl.date_range(first, last, eager=True)
    system = pl.DataFrame({"period": ["day"] * len(days), "period_start": days})
    return {name: system for name in PERIOD_MART_NAMES}


def _requested(touched: Touched, as_of: datetime, before_as_of: datetime) -> set[tuple]:
    periods = requested_periods(
        touched,
        date(2026, 10, 1),
        as_of.date(),
        _before(date(2026, 10, 1), before_as_of.date()),
        before_as_of,
        as_of,
    )
    assert periods is not None
    return {(p, s.isoformat()) for p, s in periods.select("period", "period_start").rows()}


AS_OF = datetime(2026, 11, 4, 12)


def test_nothing_new_and_the_same_as_of_recompute_nothing() -> None:
    assert _requested(Touched(), AS_OF, AS_OF) == set()


def test_a_late_task_recomputes_its_day_its_week_and_its_month() -> None:
    touched = Touched()
    touched.add(pl.DataFrame({"completed_at": [datetime(2026, 10, 14, 9)]}), ["completed_at"])
    assert _requested(touched, AS_OF, AS_OF) == {
        ("day", "2026-10-14"),
        ("week", "2026-10-12"),  # ISO week from Monday
        ("month", "2026-10-01"),
    }


def test_a_heartbeat_just_before_midnight_also_recomputes_the_next_day() -> None:
    touched = Touched()
    beat = pl.DataFrame({"ts": [datetime(2026, 10, 31, 23, 59, 30)]})
    touched.add(beat, ["ts"], reach_s=60)
    assert _requested(touched, AS_OF, AS_OF) == {
        ("day", "2026-10-31"),
        ("day", "2026-11-01"),
        ("week", "2026-10-26"),
        ("month", "2026-10-01"),
        ("month", "2026-11-01"),
    }


def test_a_later_as_of_recomputes_the_periods_it_moves_through() -> None:
    later = datetime(2026, 11, 5, 1)
    assert _requested(Touched(), later, AS_OF) == {
        ("day", "2026-11-04"),
        ("day", "2026-11-05"),
        ("week", "2026-11-02"),
        ("month", "2026-11-01"),
    }


def test_a_workflow_change_recomputes_every_period_from_its_start_on() -> None:
    # multi_agent_workflows_succeeded counts every completed workflow started before the
    # period's end: a workflow that completes now changes every later period.
    touched = Touched()
    run = pl.DataFrame(
        {"started_at": [datetime(2026, 11, 2, 8)], "completed_at": [datetime(2026, 11, 4, 9)]}
    )
    touched.add_onward(run, ["started_at", "completed_at"])
    assert _requested(touched, AS_OF, AS_OF) == {
        ("day", "2026-11-02"),
        ("day", "2026-11-03"),
        ("day", "2026-11-04"),
        ("week", "2026-11-02"),
        ("month", "2026-11-01"),
    }


def test_a_changed_registry_or_an_earlier_as_of_recompute_everything() -> None:
    before = _before(date(2026, 10, 1), AS_OF.date())
    everything = Touched(everything=True)
    assert (
        requested_periods(everything, date(2026, 10, 1), AS_OF.date(), before, AS_OF, AS_OF) is None
    )
    earlier = datetime(2026, 11, 3)
    assert (
        requested_periods(Touched(), date(2026, 10, 1), AS_OF.date(), before, AS_OF, earlier)
        is None
    )


def _store_with(tmp_path: Path, rows: dict[str, list[datetime]]) -> StateStore:
    store = StateStore(tmp_path / "state.duckdb")
    for table, column in BOUNDING_MOMENTS:
        frame = core.empty(table).collect()
        if column in rows:
            moments = pl.Series(column, rows.pop(column), dtype=frame.schema[column])
            frame = frame.clear(len(moments)).with_columns(moments)
        store.replace_table("core", table, frame)
    return store


def test_the_activity_bounds_are_the_first_and_last_dates_of_any_bounding_moment(
    tmp_path: Path,
) -> None:
    store = _store_with(
        tmp_path,
        {
            "completed_at": [datetime(2026, 10, 5, 8), datetime(2026, 10, 9)],
            "ts": [datetime(2026, 10, 20, 23, 59)],
        },
    )
    exact = activity_bounds(store)
    # An incremental run only widens the days the marts span: none lie outside them.
    widened = activity_bounds(store, (date(2026, 10, 1), date(2026, 10, 31)))
    store.close()
    assert exact == (date(2026, 10, 5), date(2026, 10, 20))
    assert widened == (date(2026, 10, 1), date(2026, 10, 31))


def test_moments_outside_the_covered_days_widen_the_bounds_on_both_sides(tmp_path: Path) -> None:
    store = _store_with(
        tmp_path,
        {
            "completed_at": [datetime(2026, 10, 5), datetime(2026, 9, 30, 23, 59, 59)],
            "ts": [datetime(2026, 11, 1), datetime(2026, 10, 31, 23)],
        },
    )
    covered = (date(2026, 10, 1), date(2026, 10, 31))
    widened, exact = activity_bounds(store, covered), activity_bounds(store)
    store.close()
    assert widened == exact == (date(2026, 9, 30), date(2026, 11, 1))


def test_as_of_is_the_latest_heartbeat_whatever_moment_it_is_asked_from(tmp_path: Path) -> None:
    latest = datetime(2026, 10, 31, 23, 59, 30)
    store = _store_with(tmp_path, {"ts": [datetime(2026, 10, 1), latest, datetime(2026, 10, 5)]})
    asked = [
        warehouse_as_of(store, at_least=moment)
        for moment in (None, datetime(2026, 10, 31), latest, datetime(2026, 11, 1))
    ]
    store.close()
    # From a moment after every heartbeat, none is found there: the whole column answers.
    assert asked == [latest] * 4


def _heartbeats(tmp_path: Path, beats: list[tuple[str, datetime, str]]) -> StateStore:
    """A state whose core.fct_heartbeats holds (agent_id, ts, status) rows."""
    store = StateStore(tmp_path / "state.duckdb")
    frame = core.empty("fct_heartbeats").collect()
    agent_id, ts, status = zip(*beats, strict=True)
    rows = frame.clear(len(beats)).with_columns(
        pl.Series("agent_id", agent_id, dtype=frame.schema["agent_id"]),
        pl.Series("ts", ts, dtype=frame.schema["ts"]),
        pl.Series("status", status, dtype=frame.schema["status"]),
    )
    store.replace_table("core", "fct_heartbeats", rows)
    return store


def _latest_status(beats: pl.DataFrame) -> dict[str, str]:
    last = beats.sort("ts").group_by("agent_id").agg(pl.col("status").last())
    return dict(last.rows())


def test_the_latest_heartbeats_are_read_from_the_touched_days_and_those_last_published(
    tmp_path: Path,
) -> None:
    # Published on 2026-10-20: a's latest heartbeat was on 10-05 (idle since), b's on 10-20.
    # Since then: a late beat of a (10-07) and new beats of b (10-21) were loaded.
    store = _heartbeats(
        tmp_path,
        [
            ("a", datetime(2026, 10, 1, 9), "idle"),
            ("a", datetime(2026, 10, 5, 9), "busy"),
            ("a", datetime(2026, 10, 7, 9), "late"),
            ("b", datetime(2026, 10, 2, 9), "idle"),
            ("b", datetime(2026, 10, 20, 9), "busy"),
            ("b", datetime(2026, 10, 21, 9), "new"),
        ],
    )
    before_health = pl.DataFrame(
        {
            "agent_id": ["a", "b"],
            "last_heartbeat_at": [datetime(2026, 10, 5, 9), datetime(2026, 10, 20, 9)],
        }
    )
    touched = Touched()
    touched.add(pl.DataFrame({"ts": [datetime(2026, 10, 7, 9), datetime(2026, 10, 21, 9)]}), ["ts"])
    read = latest_heartbeats(store, touched, before_health)
    # Nothing to start from: every heartbeat is looked through.
    everything = latest_heartbeats(store, Touched(everything=True), before_health)
    without_before = latest_heartbeats(store, touched, None)
    store.close()
    assert _latest_status(read) == {"a": "late", "b": "new"}
    assert _latest_status(everything) == _latest_status(without_before) == {"a": "late", "b": "new"}
    # Only the touched days and those of the heartbeats last published were read.
    assert sorted(read["ts"].dt.date().unique().to_list()) == [
        date(2026, 10, 5),
        date(2026, 10, 7),
        date(2026, 10, 20),
        date(2026, 10, 21),
    ]


def test_an_agent_idle_since_before_the_touched_days_keeps_its_latest_heartbeat(
    tmp_path: Path,
) -> None:
    store = _heartbeats(
        tmp_path,
        [("a", datetime(2026, 1, 5, 9), "busy"), ("b", datetime(2026, 10, 21, 9), "new")],
    )
    before_health = pl.DataFrame(
        {"agent_id": ["a", "b"], "last_heartbeat_at": [datetime(2026, 1, 5, 9), None]}
    )
    touched = Touched()
    touched.add(pl.DataFrame({"ts": [datetime(2026, 10, 21, 9)]}), ["ts"])
    read = latest_heartbeats(store, touched, before_health)
    store.close()
    assert _latest_status(read) == {"a": "busy", "b": "new"}


def test_day_ranges_join_consecutive_days() -> None:
    days = pl.Series(
        [date(2026, 10, 7), date(2026, 10, 5), date(2026, 10, 6), None, date(2026, 10, 9)]
    )
    assert day_ranges(days) == [
        (date(2026, 10, 5), date(2026, 10, 8)),
        (date(2026, 10, 9), date(2026, 10, 10)),
    ]
