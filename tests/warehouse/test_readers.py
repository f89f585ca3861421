"""BI tools open the published warehouse read-only, and a run never disturbs them."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest
import sqlalchemy

from flows.pipeline import RunResult, run_pipeline
from flows.settings import Settings
from tests.conftest import RUN_STARTED_AT, settings_for

DUCKDB_CLI = Path(sys.executable).parent / "duckdb"


def test_the_duckdb_cli_reads_the_marts_and_their_comments(
    flawed_run: tuple[Settings, RunResult],
) -> None:
    settings, _ = flawed_run
    out = subprocess.run(
        [
            str(DUCKDB_CLI),
            "-readonly",
            "-json",
            str(settings.warehouse),
            "-c",
            "SELECT column_name, comment FROM duckdb_columns() "
            "WHERE table_name = 'agent_kpis' AND column_name = 'uptime_pct'",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rows = json.loads(out)
    assert rows == [
        {
            "column_name": "uptime_pct",
            "comment": "heartbeat-covered time / scope length (fraction 0-1)",
        }
    ]


def test_sqlalchemy_with_duckdb_engine_reads_the_marts(
    flawed_run: tuple[Settings, RunResult],
) -> None:
    settings, _ = flawed_run
    engine = sqlalchemy.create_engine(
        f"duckdb:///{settings.warehouse}", connect_args={"read_only": True}
    )
    with engine.connect() as con:
        days = con.execute(
            sqlalchemy.text("SELECT count(*) FROM marts.system_kpis WHERE period = 'day'")
        ).scalar_one()
        names = sqlalchemy.inspect(con).get_table_names(schema="marts")
    engine.dispose()
    assert days > 0
    assert "agent_kpis" in names


READER = textwrap.dedent(
    """
    import sys, duckdb
    con = duckdb.connect(sys.argv[1], read_only=True)
    def runs():
        return con.execute("SELECT count(DISTINCT run_id) FROM ops.pipeline_runs").fetchone()[0]
    print(runs(), flush=True)
    sys.stdin.readline()
    print(runs(), flush=True)
    """
)


def test_a_run_publishes_while_a_reader_holds_the_file_open(
    flawed_platform: Path, tmp_path: Path
) -> None:
    settings = settings_for(flawed_platform, tmp_path / "warehouse.duckdb")
    run_pipeline(settings, run_started_at=RUN_STARTED_AT)
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(settings.warehouse)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout.readline().strip() == "1"
        second = run_pipeline(settings, run_started_at=RUN_STARTED_AT)
        assert second.status == "succeeded"
        # The open connection keeps the complete snapshot it opened...
        reader.stdin.write("\n")
        reader.stdin.flush()
        assert reader.stdout.readline().strip() == "1"
    finally:
        reader.stdin.close()
        reader.wait(timeout=60)
    # ...and the next connection sees the new one.
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    assert con.execute("SELECT count(DISTINCT run_id) FROM ops.pipeline_runs").fetchone()[0] == 2
    con.close()


def test_the_published_file_opens_while_another_reader_has_it_open(
    flawed_run: tuple[Settings, RunResult],
) -> None:
    settings, _ = flawed_run
    first = duckdb.connect(str(settings.warehouse), read_only=True)
    second = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        assert first.execute("SELECT count(*) FROM marts.agent_health").fetchone()[0] > 0
        assert second.execute("SELECT count(*) FROM marts.alerts").fetchone()[0] >= 0
    finally:
        first.close()
        second.close()


@pytest.mark.parametrize("mart", ["agent_kpis", "department_kpis", "system_kpis"])
def test_department_rows_of_a_period_sum_to_the_system_row(
    flawed_run: tuple[Settings, RunResult], mart: str
) -> None:
    settings, _ = flawed_run
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    mismatches = con.execute(
        f"""
        WITH parts AS (
            SELECT period, period_start, sum(tasks_total) AS tasks
            FROM marts.{mart} GROUP BY ALL
        )
        SELECT count(*) FROM parts JOIN marts.system_kpis s USING (period, period_start)
        WHERE parts.tasks <> s.tasks_total
        """
    ).fetchone()[0]
    con.close()
    assert mismatches == 0
