"""The pipeline end to end on a generated platform with every flaw switched on."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl
import pytest

from flows.pipeline import PipelineError, RunResult, freeze_imports, run_pipeline
from flows.settings import Settings
from tests.conftest import RUN_STARTED_AT, settings_for
from tests.reference.reference_marts import reference_marts
from tests.support.compare import assert_frames_match, query_state
from warehouse.catalog import COLUMN_COMMENTS, MART_KEYS
from warehouse.store import state_path_for


def _published(settings: Settings, sql: str) -> pl.DataFrame:
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        return con.execute(sql).pl()
    finally:
        con.close()


def test_run_succeeds_and_publishes_every_mart(flawed_run: tuple[Settings, RunResult]) -> None:
    settings, result = flawed_run
    assert result.status == "succeeded"
    tables = _published(
        settings,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'marts'",
    )
    assert set(tables["table_name"]) == set(MART_KEYS)
    assert not settings.warehouse.with_name(settings.warehouse.name + ".wal").exists()


def test_every_contract_column_carries_its_definition(
    flawed_run: tuple[Settings, RunResult],
) -> None:
    settings, _ = flawed_run
    comments = _published(
        settings,
        "SELECT table_name, column_name, comment FROM duckdb_columns() WHERE schema_name = 'marts'",
    )
    for mart, columns in COLUMN_COMMENTS.items():
        for column, text in columns.items():
            row = comments.filter(
                (pl.col("table_name") == mart) & (pl.col("column_name") == column)
            )
            assert row.height == 1, f"marts.{mart}.{column} is missing"
            assert row["comment"][0] == text


def test_counts_add_up_per_source(flawed_run: tuple[Settings, RunResult]) -> None:
    settings, result = flawed_run
    runs = _published(settings, f"SELECT * FROM ops.pipeline_runs WHERE run_id = '{result.run_id}'")
    assert runs.height == len(result.counts) + 1
    for row in runs.iter_rows(named=True):
        assert row["rows_read"] == (
            row["rows_loaded"] + row["rows_duplicate"] + row["rows_quarantined"]
        ), row["source"]


def test_quarantine_holds_every_injected_flaw_with_its_rule(
    flawed_run: tuple[Settings, RunResult], manifest: dict
) -> None:
    settings, _ = flawed_run
    held = _published(
        settings,
        "SELECT source, rule, count(*) AS n FROM quarantine.rejected_rows GROUP BY ALL",
    )
    found = {(r["source"], r["rule"]): r["n"] for r in held.iter_rows(named=True)}
    expected = {
        (source, rule): n
        for source, rules in manifest["bad_input"].items()
        for rule, n in rules.items()
        if n
    }
    assert found == expected


def test_quarantined_rows_keep_location_and_raw_payload(
    flawed_run: tuple[Settings, RunResult],
) -> None:
    settings, _ = flawed_run
    held = _published(settings, "SELECT * FROM quarantine.rejected_rows")
    assert held.height > 0
    assert held["location"].null_count() == 0
    assert held["raw_payload"].null_count() == 0
    logs = held.filter(pl.col("source") == "logs")
    assert logs["location"].str.contains(r"\.jsonl(\.gz)?:\d+$").all()


def test_duplicates_are_counted_as_the_generator_made_them(
    flawed_run: tuple[Settings, RunResult], manifest: dict
) -> None:
    _, result = flawed_run
    assert result.counts["logs"].duplicates == manifest["duplicate_events"]


def test_marts_equal_an_independent_sql_computation(
    flawed_run: tuple[Settings, RunResult],
) -> None:
    settings, _ = flawed_run
    state = duckdb.connect(str(state_path_for(settings.warehouse)), read_only=True)
    try:
        expected = reference_marts(state)
    finally:
        state.close()
    for mart, keys in MART_KEYS.items():
        ours = _published(settings, f"SELECT * FROM marts.{mart}")
        assert ours.height > 0, mart
        assert_frames_match(ours, expected[mart], keys, tolerance=1e-9)


def test_every_validation_result_is_kept(flawed_run: tuple[Settings, RunResult]) -> None:
    settings, result = flawed_run
    kept = _published(
        settings, f"SELECT * FROM ops.validation_results WHERE run_id = '{result.run_id}'"
    )
    assert kept.height == len(result.checks) > 0
    assert kept["success"].all()
    assert {"staged", "marts"} <= set(kept["suite"])


def test_a_failing_mart_check_stops_publication(
    flawed_platform: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(flawed_platform, tmp_path / "warehouse.duckdb")
    run_pipeline(settings, run_started_at=RUN_STARTED_AT)
    before = _published(settings, "SELECT * FROM marts.system_kpis ORDER BY ALL")

    import flows.pipeline as pipeline

    real_build = pipeline.build_marts

    def build_with_an_impossible_rate(*args, **kwargs):
        built = real_build(*args, **kwargs)
        built["system_kpis"] = built["system_kpis"].with_columns(pl.lit(1.5).alias("error_rate"))
        return built

    monkeypatch.setattr(pipeline, "build_marts", build_with_an_impossible_rate)
    with pytest.raises(PipelineError, match=r"system_kpis.*error_rate"):
        run_pipeline(settings, run_started_at=RUN_STARTED_AT)

    assert _published(settings, "SELECT * FROM marts.system_kpis ORDER BY ALL").equals(before)
    # The state's marts were prepared beside the checks, in a transaction never committed.
    kept = query_state(settings.warehouse, "SELECT * FROM marts.system_kpis ORDER BY ALL")
    assert kept.equals(before)
    state = duckdb.connect(str(state_path_for(settings.warehouse)), read_only=True)
    failed = state.execute(
        "SELECT table_name, column_name FROM ops.validation_results WHERE NOT success"
    ).fetchall()
    status = state.execute(
        "SELECT run_status, message FROM ops.pipeline_runs WHERE source = '*' "
        "ORDER BY run_started_at DESC, run_finished_at DESC LIMIT 1"
    ).fetchone()
    state.close()
    assert ("marts.system_kpis", "error_rate") in failed
    assert status[0] == "failed" and "error_rate" in status[1]


def test_a_missing_database_fails_with_a_one_line_reason(tmp_path: Path) -> None:
    settings = Settings.resolve(
        db_url="sqlite:///" + str(tmp_path / "nowhere.db"),
        logs_dir=tmp_path,
        warehouse=tmp_path / "warehouse.duckdb",
    )
    with pytest.raises(PipelineError) as raised:
        run_pipeline(settings)
    assert "operational database not found" in str(raised.value)
    assert "\n" not in str(raised.value)
    assert not settings.warehouse.exists()


def test_a_run_started_by_a_larger_process_records_its_own_peak_memory() -> None:
    # Linux hands a child the resident size of its parent at the fork as ru_maxrss; a run
    # started by a big scheduler or benchmark process must not report that as its own.
    held = bytearray(1200 * 1024 * 1024)
    held[::4096] = b"\x01" * len(held[::4096])  # touched: resident
    child = subprocess.run(
        [sys.executable, "-c", "from flows.pipeline import peak_rss_mb; print(peak_rss_mb())"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(Path.cwd())},
    )
    del held
    assert 0 < float(child.stdout.strip()) < 1200


def test_a_run_puts_what_the_imports_built_out_of_the_collectors_sight_once() -> None:
    freeze_imports()
    frozen = gc.get_freeze_count()
    assert frozen > 100_000  # the modules and what importing them built
    later = [[n] for n in range(1000)]
    freeze_imports()
    # Once: objects made after it stay in the collector's sight.
    assert gc.get_freeze_count() == frozen
    del later
