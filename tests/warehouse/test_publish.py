"""Publication: each run's new file carries every run record once, whether it starts from
nothing (a full refresh) or from a copy of the published file (an incremental run)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from flows.pipeline import empty_marts
from transforms import core
from warehouse.publish import discard, publish, source_freshness, staging_path, write_marts
from warehouse.store import StateStore

AT = datetime(2026, 11, 23, 10)


def _state(tmp_path: Path) -> StateStore:
    store = StateStore(tmp_path / "warehouse.state.duckdb")
    # ops.source_freshness reads these core tables.
    for table in ("fct_task_runs", "fct_workflow_runs", "fct_messages", "fct_heartbeats"):
        store.replace_table("core", table, core.empty(table).collect())
    store.replace_table(
        "core", "fct_business_metrics", core.empty("fct_business_metrics").collect()
    )
    return store


def _run(store: StateStore, target: Path, run_id: str, carry_over: bool, at: datetime = AT) -> None:
    """What a run records and publishes: its checks, its stage times, then the new file."""
    _record_checks(store, run_id, at)
    _record_timings(store, run_id, at)
    write_marts(target, run_id, empty_marts(), carry_over=carry_over)
    publish(store, target, run_id)
    # The publish stage's own time is recorded after the file was swapped in: the next
    # publication carries it.
    store.record_timings(
        pl.DataFrame({"run_id": [run_id], "stage": ["publish"], "seconds": [0.1]}), at=at
    )


def _record_timings(store: StateStore, run_id: str, at: datetime) -> None:
    timings = pl.DataFrame(
        {"run_id": [run_id] * 2, "stage": ["build_marts", "validate_output"], "seconds": [1.0, 2.0]}
    )
    store.record_timings(timings, at=at)


def _record_checks(store: StateStore, run_id: str, at: datetime) -> None:
    store.record_validation(
        pl.DataFrame(
            {
                "run_id": [run_id] * 3,
                "suite": ["marts"] * 3,
                "table_name": ["marts.agent_kpis"] * 3,
                "expectation": ["a", "b", "c"],
                "column_name": ["x", None, "y"],
                "success": [True, True, False],
                "observed": [None, None, "1 row"],
                "details": ["{}"] * 3,
                "validated_at": [at] * 3,
            }
        )
    )


def _rows(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple]:
    return sorted(con.execute(f"SELECT * FROM {table}").fetchall(), key=repr)


def _published_checks(target: Path) -> list[tuple]:
    """The rows of ops.validation_results in the published file, as `_rows` gives them."""
    published = duckdb.connect(str(target), read_only=True)
    try:
        return _rows(published, "ops.validation_results")
    finally:
        published.close()


@pytest.mark.parametrize("carry_over", [True, False])
def test_every_run_record_is_published_once(tmp_path: Path, carry_over: bool) -> None:
    store = _state(tmp_path)
    target = tmp_path / "warehouse.duckdb"
    for run_id in ("r1", "r2", "r3"):
        _run(store, target, run_id, carry_over)
    published = duckdb.connect(str(target), read_only=True)
    try:
        assert _rows(published, "ops.validation_results") == _rows(
            store.con, "ops.validation_results"
        )
        assert len(_rows(published, "ops.validation_results")) == 9
        # Everything but the last run's publish stage, recorded after its file was out.
        state_timings = [
            row for row in _rows(store.con, "ops.stage_timings") if row[:2] != ("r3", "publish")
        ]
        assert _rows(published, "ops.stage_timings") == state_timings
        assert sorted(published.execute("SHOW TABLES FROM marts").fetchall()) == sorted(
            (name,) for name in empty_marts()
        )
    finally:
        published.close()
    assert not list(tmp_path.glob(".*.tmp*"))


def _published_around(
    tmp_path: Path, unpublished: dict[str, datetime], next_run: tuple[str, datetime]
) -> tuple[StateStore, list[tuple]]:
    """r1 published at AT; then the checks of the `unpublished` runs recorded at their
    moments (their runs never published); then `next_run` (id, moment) published. Returns
    the state and the published checks."""
    store = _state(tmp_path)
    target = tmp_path / "warehouse.duckdb"
    _run(store, target, "r1", True, at=AT)
    for run_id, at in unpublished.items():
        _record_checks(store, run_id, at)
        _record_timings(store, run_id, at)
    _run(store, target, next_run[0], True, at=next_run[1])
    published = duckdb.connect(str(target), read_only=True)
    try:  # the stage times follow the same rule as the checks
        timed = {
            row[0] for row in published.execute("SELECT run_id FROM ops.stage_timings").fetchall()
        }
    finally:
        published.close()
    checks = _published_checks(target)
    assert timed == {row[0] for row in checks}
    return store, checks


def test_checks_of_a_failed_run_are_published_by_the_next_run_that_succeeds(
    tmp_path: Path,
) -> None:
    store, published = _published_around(
        tmp_path, {"r2-failed": AT + timedelta(hours=1)}, ("r3", AT + timedelta(days=3))
    )
    assert sorted({row[0] for row in published}) == ["r1", "r2-failed", "r3"]
    assert published == _rows(store.con, "ops.validation_results")


def test_checks_recorded_with_the_clock_set_back_are_published_however_far(
    tmp_path: Path,
) -> None:
    # Every check recorded before a file was published is in it: those recorded since its
    # latest one, less a day for a clock set back, are looked for first (years are not
    # read). A check recorded before that leaves the counts apart, and is looked for
    # everywhere: a clock set back by more than a day loses nothing.
    store, published = _published_around(
        tmp_path,
        {
            "clock-set-back": AT - timedelta(hours=23),
            "before-the-margin": AT - timedelta(hours=25),
        },
        ("r2", AT + timedelta(hours=1)),
    )
    assert sorted({row[0] for row in published}) == [
        "before-the-margin",
        "clock-set-back",
        "r1",
        "r2",
    ]
    assert published == _rows(store.con, "ops.validation_results")


def test_a_published_table_of_another_shape_is_replaced_whole(tmp_path: Path) -> None:
    store = _state(tmp_path)
    target = tmp_path / "warehouse.duckdb"
    _run(store, target, "r1", carry_over=True)
    # A file from a version whose validation results had fewer columns.
    old = duckdb.connect(str(target))
    old.execute("ALTER TABLE ops.validation_results DROP COLUMN details")
    old.execute("CREATE TABLE marts.retired AS SELECT 1 AS x")
    old.close()
    _run(store, target, "r2", carry_over=True)
    published = duckdb.connect(str(target), read_only=True)
    try:
        assert _rows(published, "ops.validation_results") == _rows(
            store.con, "ops.validation_results"
        )
        # The marts are the run's, not the copy's.
        assert ("retired",) not in published.execute("SHOW TABLES FROM marts").fetchall()
    finally:
        published.close()


def _alerts(values: list[float]) -> pl.DataFrame:
    """marts.alerts rows of agent a, one per day from 2026-01-01, with these values."""
    return pl.DataFrame(
        {
            "period_start": [date(2026, 1, 1) + timedelta(days=n) for n in range(len(values))],
            "agent_id": ["a"] * len(values),
            "metric": ["error_rate"] * len(values),
            "level": ["warning"] * len(values),
            "value": values,
            "threshold": [0.1] * len(values),
        }
    )


def test_a_copy_of_the_published_file_gets_only_the_mart_rows_that_changed(
    tmp_path: Path,
) -> None:
    store = _state(tmp_path)
    target = tmp_path / "warehouse.duckdb"
    write_marts(target, "r1", {**empty_marts(), "alerts": _alerts([0.5, 0.6, 0.7])})
    publish(store, target, "r1")
    write_marts(target, "r2", {**empty_marts(), "alerts": _alerts([0.5, 0.65, 0.7, 0.8])}, True)
    publish(store, target, "r2")
    new = duckdb.connect(str(target), read_only=True)
    try:
        stored = [v for (v,) in new.execute("SELECT value FROM marts.alerts").fetchall()]
        comment = new.execute(
            "SELECT comment FROM duckdb_columns() WHERE table_name = 'alerts' "
            "AND column_name = 'value'"
        ).fetchone()
    finally:
        new.close()
    # In the order they were stored: the unchanged rows where they were, the changed and the
    # new one after them (a table written whole would be in the order of its key).
    assert stored == [0.5, 0.7, 0.65, 0.8]
    assert comment is not None and comment[0]


def test_a_discarded_file_leaves_the_published_one_as_it_was(tmp_path: Path) -> None:
    store = _state(tmp_path)
    target = tmp_path / "warehouse.duckdb"
    _run(store, target, "r1", carry_over=True)
    before = target.read_bytes()
    write_marts(target, "r2", empty_marts(), carry_over=True)
    assert staging_path(target, "r2").exists()
    # (as a run that failed while writing it leaves it)
    Path(f"{staging_path(target, 'r2')}.wal").write_bytes(b"")
    discard(target, "r2")
    assert not list(tmp_path.glob(".*.tmp*"))
    assert target.read_bytes() == before


def test_source_freshness_is_each_sources_newest_moment_whatever_was_published(
    tmp_path: Path,
) -> None:
    store = _state(tmp_path)
    beats = core.empty("fct_heartbeats").collect().clear(2)
    beats = beats.with_columns(
        pl.Series("ts", [datetime(2026, 11, 1), datetime(2026, 11, 23, 9)], dtype=pl.Datetime("us"))
    )
    store.append_table("core", "fct_heartbeats", beats)
    asked = [
        source_freshness(store, published).filter(pl.col("source") == "logs")["newest_at"].item()
        for published in (
            {},
            {"logs": datetime(2026, 11, 23)},
            # Published later than anything in core now (a full refresh on fewer data).
            {"logs": datetime(2026, 11, 24)},
        )
    ]
    everything = source_freshness(store, {})
    store.close()
    assert asked == [datetime(2026, 11, 23, 9)] * 3
    assert everything.height == 5
    assert everything.filter(pl.col("source") != "logs")["newest_at"].null_count() == 4


def _reject(store: StateStore, run_id: str, source: str, *locations: str, rule: str = "x") -> None:
    store.add_rejected(
        run_id,
        AT,
        pl.DataFrame(
            {
                "source": source,
                "location": list(locations),
                "rule": rule,
                "rule_check": "a rule",
                "agent_id": "a1",
                "raw_payload": [f"payload of {loc}" for loc in locations],
            }
        ),
    )


def _publish_quarantine(store: StateStore, target: Path, run_id: str) -> dict[str, str]:
    """Publish a run. Returns the published quarantine's rule_check by location, having
    checked that its rows are the state's in every other column."""
    write_marts(target, run_id, empty_marts(), carry_over=True)
    publish(store, target, run_id)
    assert store.quarantine_changed() == []

    def rows(con: duckdb.DuckDBPyConnection) -> list[tuple]:
        return _rows(con, "(SELECT * EXCLUDE (rule_check) FROM quarantine.rejected_rows)")

    published = duckdb.connect(str(target), read_only=True)
    try:
        assert rows(published) == rows(store.con)
        checks = published.execute("SELECT location, rule_check FROM quarantine.rejected_rows")
        return dict(checks.fetchall())
    finally:
        published.close()


def test_the_quarantine_is_published_with_only_what_changed_copied(tmp_path: Path) -> None:
    store = _state(tmp_path)
    target = tmp_path / "warehouse.duckdb"
    _reject(store, "r1", "logs", "f:1", "f:2")
    _reject(store, "r1", "agent_performance", "agent_performance id=7", rule="unknown_agent")
    _reject(store, "r1", "agents", "agents agent_id=x")
    assert set(_publish_quarantine(store, target, "r1").values()) == {"a rule"}
    # A row marked in the published file only: copied from the state again, it loses its mark.
    marked = duckdb.connect(str(target))
    marked.execute("UPDATE quarantine.rejected_rows SET rule_check = 'kept' WHERE location = 'f:1'")
    marked.close()

    # r2 adds a line to logs, and reads the registry again (as every run does).
    _reject(store, "r2", "logs", "f:3")
    store.clear_rejected(["agents"])
    _reject(store, "r2", "agents", "agents agent_id=x")
    assert store.quarantine_changed() == ["agents"]
    published = _publish_quarantine(store, target, "r2")
    assert published["f:1"] == "kept"  # logs lost nothing: only its new run's row was added
    assert published["f:3"] == "a rule"

    # r3 releases the held task and forgets a line read again: their sources are copied whole.
    held = store.release_rejected("unknown_agent")
    assert held["location"].to_list() == ["agent_performance id=7"]
    store.forget_rejected("logs", pl.Series(["f:2"]))
    store.forget_rejected("logs", pl.Series(["f:9"]))  # nothing there: nothing changes
    assert store.quarantine_changed() == ["agent_performance", "logs"]
    published = _publish_quarantine(store, target, "r3")
    assert published == {"f:1": "a rule", "f:3": "a rule", "agents agent_id=x": "a rule"}


def test_a_published_quarantine_that_is_not_the_states_last_is_replaced(tmp_path: Path) -> None:
    store = _state(tmp_path)
    target = tmp_path / "warehouse.duckdb"
    _reject(store, "r1", "logs", "f:1", "f:2")
    _publish_quarantine(store, target, "r1")
    backup = tmp_path / "backup.duckdb"
    backup.write_bytes(target.read_bytes())
    store.forget_rejected("logs", pl.Series(["f:1"]))
    _publish_quarantine(store, target, "r2")
    # The file is restored from the backup: it holds f:1, which the state forgot before.
    target.write_bytes(backup.read_bytes())
    assert list(_publish_quarantine(store, target, "r3")) == ["f:2"]
