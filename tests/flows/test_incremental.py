"""Incremental runs end where one full run on all the data ends.

One generated platform with every flaw is delivered in batches (tests/support/replay.py):
rows in id order, workflows and messages first provisional and then updated in place, log
files late and out of order, restatements, and a few files delivered twice. An incremental
run follows every batch (one of them first fails its checks and publishes nothing); then
every mart must equal that of one full run on the final data.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from flows import pipeline
from flows.extract import RowFilter
from flows.pipeline import PipelineError, RunResult, run_pipeline, skipped_ids
from flows.settings import Settings
from quality.expectations import CheckResult
from tests.conftest import RUN_STARTED_AT, settings_for
from tests.support.compare import assert_frames_match, published_marts, query_state
from tests.support.replay import Replay
from warehouse.catalog import MART_KEYS
from warehouse.store import StateStore, state_path_for

BATCHES = 4


def _failing_checks(*_):  # type: ignore[no-untyped-def]
    return [CheckResult("marts", "marts.system_kpis", "expect_failure", None, False, "", "")]


@pytest.fixture(scope="module")
def replayed(
    flawed_platform: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Settings, list[RunResult], Settings, tuple[dict, dict]]:
    """(incremental settings, one result per batch, settings of the full run on the end state,
    (marts after the run that followed the failed one, marts of a full run at that point))."""
    root = tmp_path_factory.mktemp("replay")
    replay = Replay(flawed_platform, root / "platform", BATCHES)
    incremental = settings_for(root / "platform", root / "incremental" / "warehouse.duckdb")
    results = []
    for k in range(BATCHES):
        replay.deliver(k)
        if k == 1:
            # This batch's run fails its checks and publishes nothing; the next run (with no
            # new data to read) must still recompute what this batch touched.
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(pipeline, "validate_output", _failing_checks)
                with pytest.raises(PipelineError, match="nothing published"):
                    run_pipeline(incremental, run_started_at=RUN_STARTED_AT)
            # The new file its marts were written into, beside their checks, is gone.
            assert not list(incremental.warehouse.parent.glob(".*.tmp*"))
        results.append(run_pipeline(incremental, run_started_at=RUN_STARTED_AT))
        if k == 1:
            at_failure = settings_for(root / "platform", root / "full-1" / "warehouse.duckdb")
            run_pipeline(at_failure, run_started_at=RUN_STARTED_AT, full_refresh=True)
            recovered = (
                published_marts(incremental.warehouse),
                published_marts(at_failure.warehouse),
            )
    full = settings_for(root / "platform", root / "full" / "warehouse.duckdb")
    run_pipeline(full, run_started_at=RUN_STARTED_AT, full_refresh=True)
    return incremental, results, full, recovered


def test_the_first_run_is_full_and_the_later_ones_incremental(replayed) -> None:  # type: ignore[no-untyped-def]
    incremental, results, _, _ = replayed
    con = duckdb.connect(str(incremental.warehouse), read_only=True)
    modes = dict(
        con.execute("SELECT run_id, run_mode FROM ops.pipeline_runs WHERE source = '*'").fetchall()
    )
    con.close()
    assert [modes[r.run_id] for r in results] == ["full"] + ["incremental"] * (BATCHES - 1)


@pytest.mark.parametrize("mart", list(MART_KEYS))
def test_incremental_runs_end_with_the_marts_of_one_full_run(replayed, mart: str) -> None:  # type: ignore[no-untyped-def]
    incremental, _, full, _ = replayed
    ours, theirs = (
        published_marts(incremental.warehouse)[mart],
        published_marts(full.warehouse)[mart],
    )
    assert theirs.height > 0
    assert_frames_match(ours, theirs, MART_KEYS[mart])


def test_every_batch_adds_up_per_source(replayed) -> None:  # type: ignore[no-untyped-def]
    _, results, _, _ = replayed
    for result in results:
        for count in result.counts.values():
            assert count.read == count.loaded + count.duplicates + count.quarantined, count


def test_a_file_delivered_twice_adds_nothing(replayed) -> None:  # type: ignore[no-untyped-def]
    incremental, results, _, _ = replayed
    con = duckdb.connect(str(state_path_for(incremental.warehouse)), read_only=True)
    copies = con.execute(
        "SELECT path, copy_of, lines FROM ops.log_files WHERE path LIKE 'redelivered/%'"
    ).fetchall()
    con.close()
    assert len(copies) == 3
    assert all(copy_of == path.removeprefix("redelivered/") for path, copy_of, _ in copies)
    last = results[-1].counts["logs"]
    assert last.duplicates >= sum(lines for _, _, lines in copies)


def test_a_run_without_new_data_changes_no_mart_row_and_says_so(replayed) -> None:  # type: ignore[no-untyped-def]
    incremental, _, _, _ = replayed
    before = published_marts(incremental.warehouse)
    result = run_pipeline(incremental, run_started_at=RUN_STARTED_AT)
    after = published_marts(incremental.warehouse)
    assert result.message == "no new data; marts unchanged"
    assert result.counts["agent_performance"].read == 0
    assert result.counts["logs"].read == 0
    for name in MART_KEYS:
        assert after[name].equals(before[name]), name


@pytest.mark.parametrize("mart", list(MART_KEYS))
def test_the_run_after_a_failed_one_recomputes_what_the_failed_one_loaded(replayed, mart) -> None:  # type: ignore[no-untyped-def]
    _, _, _, (ours, theirs) = replayed
    assert_frames_match(ours[mart], theirs[mart], MART_KEYS[mart])


def test_an_incremental_run_checks_the_input_of_the_days_it_touched(
    replayed, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    incremental, _, _, _ = replayed
    seen = {}
    monkeypatch.setattr(pipeline, "validate_staged", lambda staged: seen.update(staged) or [])
    store = StateStore(state_path_for(incremental.warehouse))
    try:
        day = date(2026, 10, 28)
        checks = pipeline.validate_input(store, pl.Series([day]))
        everything = store.scalar("SELECT count(*) FROM core.fct_task_runs")
    finally:
        store.close()
    tasks = seen["fct_task_runs"]
    assert tasks.height > 0
    assert tasks["completed_at"].dt.date().unique().to_list() == [day]
    assert tasks.height < everything
    assert seen["dim_agents"].height > 0  # small tables are checked whole
    assert all(c.success for c in checks)


def _quarantined_messages(warehouse: Path) -> dict[str, tuple[str, str]]:
    """The quarantined agent_communications rows: location -> (rule, run_id)."""
    rows = query_state(
        warehouse,
        "SELECT location, rule, run_id FROM quarantine.rejected_rows "
        "WHERE source = 'agent_communications'",
    ).rows()
    return {location: (rule, run_id) for location, rule, run_id in rows}


def test_a_message_no_watermark_can_place_is_read_when_new_and_again_once_its_date_is_set(
    flawed_platform: Path, tmp_path: Path
) -> None:
    shutil.copytree(flawed_platform, tmp_path / "platform")
    db = sqlite3.connect(tmp_path / "platform" / "agents.db")
    # Two agents the registry knows well (some of its rows are flawed).
    sender, receiver = [
        a
        for (a,) in db.execute(
            "SELECT sender_agent_id FROM agent_communications WHERE sender_agent_id IN "
            "(SELECT agent_id FROM agents) GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 2"
        )
    ]
    (top,) = db.execute("SELECT max(id) FROM agent_communications").fetchone()
    new_id = top + 1
    db.execute(
        "INSERT INTO agent_communications VALUES (?, 'm-late', ?, ?, 'request', "
        "'2026-11-01 23:00:00', NULL, NULL, 'pending', NULL)",
        [new_id, sender, receiver],
    )
    db.commit()
    settings = settings_for(tmp_path / "platform", tmp_path / "warehouse.duckdb")
    location = f"agent_communications id={new_id}"

    first = run_pipeline(settings, run_started_at=RUN_STARTED_AT)
    assert _quarantined_messages(settings.warehouse)[location] == ("missing_field", first.run_id)
    store = StateStore(state_path_for(settings.warehouse))
    try:
        assert store.watermark("agent_communications")[0] == new_id
    finally:
        store.close()

    # Unchanged, it is not read again (before, each run read and quarantined it anew): it
    # stays in quarantine as the first run put it there. (The rows of the lookback window
    # are read again, and those of them that are bad quarantined again.)
    second = run_pipeline(settings, run_started_at=RUN_STARTED_AT)
    assert second.counts["agent_communications"].read > 0
    assert _quarantined_messages(settings.warehouse)[location] == ("missing_field", first.run_id)

    # Delivered: its updated_at is set, in the window, and the next run loads it.
    db.execute(
        "UPDATE agent_communications SET received_at = '2026-11-01 23:00:05', "
        "status = 'delivered', updated_at = '2026-11-01 23:00:05' WHERE id = ?",
        [new_id],
    )
    db.commit()
    db.close()
    third = run_pipeline(settings, run_started_at=RUN_STARTED_AT)
    assert third.counts["agent_communications"].loaded >= 1
    assert location not in _quarantined_messages(settings.warehouse)
    store = StateStore(state_path_for(settings.warehouse))
    try:
        loaded = store.scalar(
            f"SELECT count(*) FROM core.fct_messages WHERE message_row_id = {new_id}"
        )
    finally:
        store.close()
    assert loaded == 1


def _first_run_on_a_copy(flawed_platform: Path, tmp_path: Path) -> Settings:
    """The settings of a warehouse that has had one run, on a copy of the flawed platform
    (`tmp_path / "platform"`, free to change)."""
    shutil.copytree(flawed_platform, tmp_path / "platform")
    settings = settings_for(tmp_path / "platform", tmp_path / "warehouse.duckdb")
    run_pipeline(settings, run_started_at=RUN_STARTED_AT)
    return settings


def _after_a_change(
    flawed_platform: Path, tmp_path: Path, sql: str, rows: list[tuple]
) -> tuple[RunResult, dict[str, pl.DataFrame]]:
    """A run, then `sql` (for each of `rows`) in the source, then an incremental run: its
    result and marts, checked equal to those of one full run on the changed source."""
    settings = _first_run_on_a_copy(flawed_platform, tmp_path)
    db = sqlite3.connect(tmp_path / "platform" / "agents.db")
    db.executemany(sql, rows)
    db.commit()
    db.close()
    result = run_pipeline(settings, run_started_at=RUN_STARTED_AT)
    return result, _as_a_full_run(settings, tmp_path, RUN_STARTED_AT)


def _as_a_full_run(settings: Settings, tmp_path: Path, at: datetime) -> dict[str, pl.DataFrame]:
    """The marts `settings` published, checked equal to those of one full run at `at` on the
    same sources, and unchanged by a run after with nothing new, which says so."""
    full = Settings(**{**vars(settings), "warehouse": tmp_path / "full.duckdb"})
    run_pipeline(full, run_started_at=at, full_refresh=True)
    ours, theirs = published_marts(settings.warehouse), published_marts(full.warehouse)
    for mart in MART_KEYS:
        assert_frames_match(ours[mart], theirs[mart], MART_KEYS[mart])
    again = run_pipeline(settings, run_started_at=at)
    assert again.message == "no new data; marts unchanged"
    return ours


def test_targets_changed_alone_recompute_business_value_as_a_full_run_would(
    flawed_platform: Path, tmp_path: Path
) -> None:
    result, marts = _after_a_change(
        flawed_platform,
        tmp_path,
        "INSERT INTO business_targets VALUES (?, ?, ?, ?)",
        [("revenue_usd", "2026-10-01", "2026-12-31", 1e6)],
    )
    # Nothing else is new: the run still publishes, with the new target.
    assert result.message == "published"
    assert set(marts["business_value"]["revenue_target_usd"].to_list()) == {1e6}


def test_business_figures_dated_outside_the_days_with_activity_change_the_marts_as_a_full_run(
    flawed_platform: Path, tmp_path: Path
) -> None:
    # The platform's activity runs from 24 October to 1 November; the run starts on 2 November.
    result, marts = _after_a_change(
        flawed_platform,
        tmp_path,
        "INSERT INTO business_metrics (metric_date, department, metric_name, value, "
        "recorded_at) VALUES (?, 'finance', 'revenue_usd', ?, ?)",
        [
            # Before any activity: only business_value has its date.
            ("2026-09-20", 5000.0, "2026-09-21 00:00:00"),
            # The run's day, after the last with activity: its week (from 26 October) and its
            # month (November) hold it.
            ("2026-11-02", 700.0, "2026-11-02 00:10:00"),
        ],
    )
    assert result.message == "published"
    assert date(2026, 9, 20) in marts["business_value"]["date"].to_list()


def test_rows_ahead_of_the_run_are_loaded_once_its_clock_has_passed_them(
    flawed_platform: Path, tmp_path: Path
) -> None:
    # A task and a heartbeat 10 minutes after the run starts: more than its 5 minutes of
    # grace, so held as future_timestamp; an hour later they are in the past, and loaded.
    shutil.copytree(flawed_platform, tmp_path / "platform")
    platform = tmp_path / "platform"
    db = sqlite3.connect(platform / "agents.db")
    (agent,) = db.execute(
        "SELECT agent_id FROM agents WHERE deployment_status = 'deployed' ORDER BY 1 LIMIT 1"
    ).fetchone()
    ahead = (RUN_STARTED_AT + timedelta(minutes=10)).isoformat(sep=" ")
    db.execute(
        "INSERT INTO agent_performance (agent_id, department, task_type, execution_time, "
        "success_rate, timestamp) SELECT agent_id, department, 'ahead', 1.5, 100, ? "
        "FROM agents WHERE agent_id = ?",
        [ahead, agent],
    )
    # Business figures: one recorded ahead (due an hour later), three for tomorrow (due
    # then), their dates written as staging reads them: plain, as a timestamp, with a blank.
    tomorrow = (RUN_STARTED_AT + timedelta(days=1)).date().isoformat()
    db.executemany(
        "INSERT INTO business_metrics (metric_date, department, metric_name, value, "
        "recorded_at) VALUES (?, 'finance', ?, ?, ?)",
        [
            (RUN_STARTED_AT.date().isoformat(), "revenue_usd", 900.0, ahead),
            (tomorrow, "revenue_usd", 40.0, ahead),
            (f"{tomorrow}T06:00:00", "conversions", 3.0, ahead),
            (f"{tomorrow} ", "leads_generated", 5.0, ahead),
        ],
    )
    db.commit()
    db.close()
    beat = {"ts": ahead, "agent_id": agent, "event": "heartbeat", "status": "ok"}
    beat |= {"task_queue": 0, "message_queue": 0, "current_task_type": None}
    log = platform / "logs" / RUN_STARTED_AT.date().isoformat() / f"{agent}-00-ahead.jsonl"
    log.parent.mkdir(exist_ok=True)
    log.write_text(json.dumps(beat) + "\n")
    settings = settings_for(platform, tmp_path / "warehouse.duckdb")
    run_pipeline(settings, run_started_at=RUN_STARTED_AT)
    held = query_state(
        settings.warehouse,
        "SELECT source FROM quarantine.rejected_rows WHERE rule = 'future_timestamp' "
        f"AND raw_payload LIKE '%{ahead}%'",
    )["source"].to_list()
    assert sorted(held) == ["agent_performance", *["business_metrics"] * 4, "logs"]

    later = RUN_STARTED_AT + timedelta(hours=1)
    second = run_pipeline(settings, run_started_at=later)
    assert second.counts["agent_performance"].from_quarantine == 1
    assert second.counts["logs"].from_quarantine == 1
    assert second.counts["business_metrics"].from_quarantine == 1
    # And what stays ahead (the flawed platform's lines in 2099) stays held, untouched.
    _as_a_full_run(settings, tmp_path, later)
    # Tomorrow's figure, once tomorrow has come.
    next_day = RUN_STARTED_AT + timedelta(days=1)
    third = run_pipeline(settings, run_started_at=next_day)
    assert third.counts["business_metrics"].from_quarantine == 3
    marts = _as_a_full_run(settings, tmp_path, next_day)
    assert date.fromisoformat(tomorrow) in marts["business_value"]["date"].to_list()


@pytest.mark.parametrize(
    "sql",
    [
        # Its row now breaks a rule (a status outside the contract's set)...
        "UPDATE agents SET deployment_status = 'decommissioned' WHERE agent_id = ?",
        # ... or is gone.
        "DELETE FROM agents WHERE agent_id = ?",
    ],
)
def test_an_agent_the_registry_stops_knowing_is_held_again_as_a_full_run_holds_it(
    flawed_platform: Path, tmp_path: Path, sql: str
) -> None:
    db = sqlite3.connect(flawed_platform / "agents.db")
    (agent,) = db.execute(
        "SELECT agent_id FROM agent_performance GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
    ).fetchone()
    registry_row = db.execute("SELECT * FROM agents WHERE agent_id = ?", [agent]).fetchone()
    db.close()
    result, marts = _after_a_change(flawed_platform, tmp_path, sql, [(agent,)])
    # Its tasks and heartbeats, loaded before, wait in the quarantine for an unknown agent, as
    # a full run would hold them: the incremental run rebuilt from the sources, and says why.
    assert result.message == (
        f"published (rebuilt from the sources: the registry no longer knows {agent})"
    )
    assert agent not in marts["agent_kpis"]["agent_id"].to_list()
    modes = query_state(
        tmp_path / "warehouse.duckdb",
        f"SELECT run_mode FROM ops.pipeline_runs WHERE source = '*' AND run_id = '{result.run_id}'",
    )
    assert modes["run_mode"].to_list() == ["full"]
    # The registry knows it again: what was held is loaded, as a full run would load it.
    db = sqlite3.connect(tmp_path / "platform" / "agents.db")
    db.execute("DELETE FROM agents WHERE agent_id = ?", [agent])
    db.execute(f"INSERT INTO agents VALUES ({', '.join('?' * len(registry_row))})", registry_row)
    db.commit()
    db.close()
    settings = settings_for(tmp_path / "platform", tmp_path / "warehouse.duckdb")
    back = run_pipeline(settings, run_started_at=RUN_STARTED_AT)
    assert back.message == "published"
    assert back.counts["agent_performance"].from_quarantine > 0
    marts = _as_a_full_run(settings, tmp_path, RUN_STARTED_AT)
    assert agent in marts["agent_kpis"]["agent_id"].to_list()


def test_skipped_ids_are_those_a_later_id_passed_over() -> None:
    ids = pl.Series(["5", "7", "8", "12", None, "x"])
    assert skipped_ids(ids, 3).to_list() == [4, 6, 9, 10, 11]
    assert skipped_ids(ids, None).to_list() == [6, 9, 10, 11]  # from the first id read
    assert skipped_ids(ids, 12).to_list() == []
    # A jump of more than MAX_SKIPPED_RUN ids is the source's sequence moving on.
    jump = pl.Series([str(4 + pipeline.MAX_SKIPPED_RUN + 1)])
    assert skipped_ids(jump, 3).to_list() == []
    run = pl.Series([str(4 + pipeline.MAX_SKIPPED_RUN)])
    assert skipped_ids(run, 3).len() == pipeline.MAX_SKIPPED_RUN


def test_a_row_committed_after_a_higher_id_was_read_is_loaded_as_a_full_run_loads_it(
    flawed_platform: Path, tmp_path: Path
) -> None:
    # In PostgreSQL a row can commit after a row with a higher id: the id watermark has then
    # passed it, and only the ids noted as skipped bring it in.
    settings = _first_run_on_a_copy(flawed_platform, tmp_path)
    db_path = tmp_path / "platform" / "agents.db"
    db = sqlite3.connect(db_path)
    (agent,) = db.execute(
        "SELECT agent_id FROM agents WHERE deployment_status = 'deployed' ORDER BY 1 LIMIT 1"
    ).fetchone()
    task_id = db.execute("SELECT max(id) FROM agent_performance").fetchone()[0]
    metric_id = db.execute("SELECT max(id) FROM business_metrics").fetchone()[0]
    at = (RUN_STARTED_AT - timedelta(minutes=1)).isoformat(sep=" ")

    def commit(offset: int) -> None:
        db.execute(
            "INSERT INTO agent_performance (id, agent_id, department, task_type, "
            "execution_time, success_rate, timestamp) SELECT ?, agent_id, department, "
            "'late', 2.5, 100, ? FROM agents WHERE agent_id = ?",
            [task_id + offset, at, agent],
        )
        db.execute(
            "INSERT INTO business_metrics (id, metric_date, department, metric_name, value, "
            "recorded_at) VALUES (?, ?, 'finance', 'conversions', ?, ?)",
            [metric_id + offset, RUN_STARTED_AT.date().isoformat(), offset, at],
        )
        db.commit()

    commit(1)
    commit(3)
    later = RUN_STARTED_AT + timedelta(minutes=10)
    first = run_pipeline(settings, run_started_at=later)
    assert first.counts["agent_performance"].read == 2
    gaps = "SELECT source, id FROM ops.id_gaps ORDER BY source"
    assert query_state(settings.warehouse, gaps).rows() == [
        ("agent_performance", task_id + 2),
        ("business_metrics", metric_id + 2),
    ]
    commit(2)  # the row in between commits last
    db.close()
    second = run_pipeline(settings, run_started_at=later)
    assert second.counts["agent_performance"].read == 1
    assert second.counts["business_metrics"].read == 1
    assert query_state(settings.warehouse, gaps).is_empty()
    _as_a_full_run(settings, tmp_path, later)


def test_a_skipped_id_is_looked_for_by_the_next_run_however_late_then_forgotten(
    flawed_platform: Path, tmp_path: Path
) -> None:
    settings = _first_run_on_a_copy(flawed_platform, tmp_path)
    db = sqlite3.connect(tmp_path / "platform" / "agents.db")
    (top,) = db.execute("SELECT max(id) FROM business_metrics").fetchone()
    figure = (
        "INSERT INTO business_metrics (id, metric_date, department, metric_name, value, "
        "recorded_at) VALUES (?, '2026-11-01', 'finance', 'conversions', ?, "
        "'2026-11-01 12:00:00')"
    )
    db.executemany(figure, [(top + 2, 2), (top + 4, 4)])
    db.commit()
    run_pipeline(settings, run_started_at=RUN_STARTED_AT)
    gaps = "SELECT id FROM ops.id_gaps ORDER BY id"
    assert query_state(settings.warehouse, gaps)["id"].to_list() == [top + 1, top + 3]
    db.execute(figure, [top + 1, 1])  # one commits late; the other never comes
    db.commit()
    db.close()
    # The next run starts just over the lookback after the gaps were noticed: it still looks
    # for them, a last time.
    late = RUN_STARTED_AT + timedelta(seconds=settings.lookback_s + 1.5)
    result = run_pipeline(settings, run_started_at=late)
    assert result.counts["business_metrics"].read == 1
    assert query_state(settings.warehouse, gaps).is_empty()
    _as_a_full_run(settings, tmp_path, late)


def test_a_run_notes_only_the_ids_missing_near_the_top_of_what_it_read(
    flawed_platform: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Holes deep in the history (inserts rolled back long ago) are not rows still to come.
    shutil.copytree(flawed_platform, tmp_path / "platform")
    db = sqlite3.connect(tmp_path / "platform" / "agents.db")
    (top,) = db.execute("SELECT max(id) FROM agent_performance").fetchone()
    db.execute("DELETE FROM agent_performance WHERE id IN (?, ?)", [top // 2, top - 3])
    db.commit()
    db.close()
    monkeypatch.setattr(pipeline, "RECENT_IDS", 10)
    settings = settings_for(tmp_path / "platform", tmp_path / "warehouse.duckdb")
    run_pipeline(settings, run_started_at=RUN_STARTED_AT)
    noted = query_state(settings.warehouse, "SELECT source, id FROM ops.id_gaps")
    assert noted.rows() == [("agent_performance", top - 3)]


def test_skipped_ids_are_read_by_their_key_alone() -> None:
    # `id > n OR id IN (...)` would make SQLite scan the whole table.
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE agent_performance (id INTEGER PRIMARY KEY, agent_id TEXT)")
    for rows in (
        RowFilter(only_ids=(3, 7), by_id=True),
        RowFilter(after_id=9, by_id=True),
    ):
        plan = db.execute(f"EXPLAIN QUERY PLAN SELECT * FROM agent_performance {rows.sql()}")
        assert "SEARCH agent_performance USING INTEGER PRIMARY KEY" in plan.fetchall()[0][3]


def test_a_registry_emptied_fails_the_run_and_keeps_the_marts(
    flawed_platform: Path, tmp_path: Path
) -> None:
    settings = _first_run_on_a_copy(flawed_platform, tmp_path)
    before = published_marts(settings.warehouse)
    db = sqlite3.connect(tmp_path / "platform" / "agents.db")
    db.execute("DELETE FROM agents")
    db.commit()
    db.close()
    with pytest.raises(PipelineError, match="lists no valid agent, where it knew"):
        run_pipeline(settings, run_started_at=RUN_STARTED_AT)
    after = published_marts(settings.warehouse)
    for mart in MART_KEYS:
        assert_frames_match(after[mart], before[mart], MART_KEYS[mart])
    # Asked for, the rebuild happens.
    result = run_pipeline(settings, run_started_at=RUN_STARTED_AT, full_refresh=True)
    assert result.status == "succeeded"
