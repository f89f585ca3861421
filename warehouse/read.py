"""The read side: what summaries and the CLI read from the published warehouse.

Everything here opens the published file read-only, exactly as a BI tool does, so it never
blocks a run and always sees one complete refresh.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import duckdb
import polars as pl

from warehouse.catalog import in_key_order

# The id of the latest run, as a subquery.
LAST_RUN = "(SELECT run_id FROM ops.pipeline_runs ORDER BY run_started_at DESC LIMIT 1)"


def connect_read_only(warehouse: Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the published warehouse."""
    if not warehouse.is_file():
        raise FileNotFoundError(f"no warehouse at {warehouse}: run `agentkpi run` first")
    return duckdb.connect(
        str(warehouse),
        read_only=True,
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False},
    )


@dataclass
class Summary:
    """The figures `make run` prints."""

    warehouse: Path
    as_of: datetime | None
    day: date | None
    system: dict | None
    top_agents: pl.DataFrame
    bottom_agents: pl.DataFrame
    departments: pl.DataFrame
    alerts: pl.DataFrame
    last_run: pl.DataFrame


def latest_complete_start(con: duckdb.DuckDBPyConnection, period: str = "day") -> date | None:
    """The start of the latest `period` (day, week, month) that has ended by as_of."""
    row = con.execute(
        "SELECT max(period_start) FROM marts.agent_kpis WHERE period = ? AND is_complete",
        [period],
    ).fetchone()
    return row[0] if row else None


def summary(warehouse: Path) -> Summary:
    """System KPIs of the latest complete day, its best and worst agents, departments with
    their health, that day's alerts, and the last run's row counts."""
    con = connect_read_only(warehouse)
    try:
        as_of_row = con.execute("SELECT max(as_of) FROM marts.agent_health").fetchone()
        day = latest_complete_start(con)
        system = con.execute(
            "SELECT * FROM marts.system_kpis WHERE period = 'day' AND period_start = ?", [day]
        ).pl()
        ranked = con.execute(
            "SELECT agent_id, department, tasks_succeeded, tasks_total, success_rate, "
            "health_status, rank_overall FROM marts.agent_kpis "
            "WHERE period = 'day' AND period_start = ? AND tasks_total > 0 "
            "ORDER BY rank_overall, agent_id",
            [day],
        ).pl()
        departments = con.execute(
            "SELECT department, agents_active, tasks_total, success_rate, response_time_avg_s, "
            "uptime_pct, health_status FROM marts.department_kpis "
            "WHERE period = 'day' AND period_start = ? ORDER BY rank_success, department",
            [day],
        ).pl()
        alerts = con.execute(
            "SELECT agent_id, department, metric, level, value, threshold FROM marts.alerts "
            "WHERE period_start = ? ORDER BY level, agent_id, metric",
            [day],
        ).pl()
        last_run = con.execute(
            "SELECT source, rows_read, rows_loaded, rows_duplicate, rows_quarantined, "
            f"run_status, run_finished_at FROM ops.pipeline_runs WHERE run_id = {LAST_RUN} "
            "ORDER BY source = '*', source"
        ).pl()
    finally:
        con.close()
    return Summary(
        warehouse=warehouse,
        as_of=as_of_row[0] if as_of_row else None,
        day=day,
        system=system.row(0, named=True) if system.height else None,
        top_agents=ranked.head(3),
        bottom_agents=ranked.tail(3).reverse(),
        departments=departments,
        alerts=alerts,
        last_run=last_run,
    )


def quarantine_summary(warehouse: Path) -> pl.DataFrame:
    """What the quarantine holds, by source and rule: rows, and one example location."""
    con = connect_read_only(warehouse)
    try:
        return con.execute(
            "SELECT source, rule, count(*) AS rows, min(location) AS example "
            "FROM quarantine.rejected_rows GROUP BY source, rule ORDER BY source, rule"
        ).pl()
    finally:
        con.close()


@dataclass
class ReportRows:
    """The mart rows one stakeholder summary reads (see flows/report.py)."""

    as_of: datetime | None
    system: pl.DataFrame  # system_kpis of the period kind, the last periods up to the one
    departments: pl.DataFrame  # department_kpis, the same periods
    agents: pl.DataFrame  # agent_kpis of the period
    workflows: pl.DataFrame  # workflow_kpis of the period
    business: pl.DataFrame  # business_value from 1 January to the period's last date
    quarantine: pl.DataFrame  # held rows by source and rule
    failed_checks: pl.DataFrame  # the failed checks of the last run
    freshness: pl.DataFrame  # newest data per source
    last_run: pl.DataFrame  # the last run's counts per source


def latest_complete_period(warehouse: Path, period: str) -> date | None:
    """The start of the latest `period` that has ended by as_of, in the published file."""
    con = connect_read_only(warehouse)
    try:
        return latest_complete_start(con, period)
    finally:
        con.close()


def report_rows(warehouse: Path, period: str, starts: list[date], last_day: date) -> ReportRows:
    """The rows of the given periods (`starts`, of kind `period`, the summary's own first) and
    the business figures of the year up to `last_day`."""
    con = connect_read_only(warehouse)
    try:

        def rows(sql: str, params: list) -> pl.DataFrame:
            return con.execute(sql, params).pl()

        in_periods = "period = ? AND period_start IN (SELECT unnest(?::DATE[]))"
        first = starts[0]
        as_of_row = con.execute("SELECT max(as_of) FROM marts.agent_health").fetchone()
        return ReportRows(
            as_of=as_of_row[0] if as_of_row else None,
            system=rows(f"SELECT * FROM marts.system_kpis WHERE {in_periods}", [period, starts]),
            departments=rows(
                f"SELECT * FROM marts.department_kpis WHERE {in_periods}", [period, starts]
            ),
            agents=rows(
                "SELECT * FROM marts.agent_kpis WHERE period = ? AND period_start = ?",
                [period, first],
            ),
            workflows=rows(
                "SELECT * FROM marts.workflow_kpis WHERE period = ? AND period_start = ? "
                "ORDER BY runs DESC, workflow_name",
                [period, first],
            ),
            business=rows(
                "SELECT * FROM marts.business_value "
                "WHERE date BETWEEN date_trunc('year', ?::DATE) AND ? ORDER BY date",
                [last_day, last_day],
            ),
            quarantine=rows(
                "SELECT source, rule, count(*) AS rows FROM quarantine.rejected_rows "
                "GROUP BY source, rule ORDER BY source, rule",
                [],
            ),
            failed_checks=rows(
                "SELECT table_name, expectation, column_name, observed "
                f"FROM ops.validation_results WHERE NOT success AND run_id = {LAST_RUN} "
                "ORDER BY table_name, expectation, column_name",
                [],
            ),
            freshness=rows("SELECT * FROM ops.source_freshness ORDER BY source", []),
            last_run=rows(
                f"SELECT * FROM ops.pipeline_runs WHERE run_id = {LAST_RUN} "
                "ORDER BY source = '*', source",
                [],
            ),
        )
    finally:
        con.close()


# Example queries for docs/marts.md, one per mart.
MART_EXAMPLES = {
    "agent_kpis": (
        "SELECT agent_id, tasks_total, success_rate, exec_time_p95_s, health_status\n"
        "FROM marts.agent_kpis\n"
        "WHERE period = 'week' AND is_complete\n"
        "ORDER BY period_start DESC, rank_overall\nLIMIT 10;"
    ),
    "department_kpis": (
        "SELECT period_start, department, success_rate, uptime_pct, revenue_usd\n"
        "FROM marts.department_kpis\n"
        "WHERE period = 'month'\nORDER BY period_start, rank_success;"
    ),
    "system_kpis": (
        "SELECT period_start, agents_active, tasks_total, success_rate, workflow_completion_rate\n"
        "FROM marts.system_kpis\nWHERE period = 'day'\nORDER BY period_start DESC\nLIMIT 7;"
    ),
    "workflow_kpis": (
        "SELECT workflow_name, sum(runs) AS runs, sum(completed) / sum(completed + failed) "
        "AS completion_rate\nFROM marts.workflow_kpis\nWHERE period = 'day'\n"
        "GROUP BY workflow_name\nORDER BY runs DESC;"
    ),
    "business_value": (
        "SELECT date, revenue_ytd_usd, revenue_target_usd, revenue_progress_pct, "
        "expected_progress_pct, revenue_on_track, roi\n"
        "FROM marts.business_value\nORDER BY date DESC\nLIMIT 1;"
    ),
    "agent_health": (
        "SELECT agent_id, department, is_healthy, seconds_since_heartbeat, health_status\n"
        "FROM marts.agent_health\nWHERE NOT is_healthy OR health_status IN ('red', 'yellow');"
    ),
    "alerts": (
        "SELECT period_start, agent_id, metric, level, value, threshold\n"
        "FROM marts.alerts\nWHERE period_start >= current_date - 7\n"
        "ORDER BY period_start DESC, level, agent_id;"
    ),
}


def marts_markdown(warehouse: Path) -> str:
    """docs/marts.md: every mart of the published file with its grain (the table comment),
    every column with its type and definition (the column comments), and an example query."""
    con = connect_read_only(warehouse)
    try:
        tables = con.execute(
            "SELECT table_name, comment FROM duckdb_tables() "
            "WHERE database_name = current_database() AND schema_name = 'marts' "
            "ORDER BY table_name"
        ).fetchall()
        columns = con.execute(
            "SELECT table_name, column_name, data_type, comment FROM duckdb_columns() "
            "WHERE database_name = current_database() AND schema_name = 'marts' "
            "ORDER BY table_name, column_index"
        ).fetchall()
    finally:
        con.close()
    lines = [
        "# The marts",
        "",
        "Generated from the warehouse's own table and column comments by `agentkpi docs`",
        "(a test fails when this file is out of date). Definitions: `contract/kpis.md`.",
        "Open the published file read-only, e.g. `duckdb -readonly data/warehouse.duckdb`.",
        "Rates are fractions 0-1, durations seconds (`_s`), money USD (`_usd`).",
    ]
    for table, grain in tables:
        lines += ["", f"## marts.{table}", "", f"Grain: {grain}.", ""]
        lines += ["| column | type | definition |", "|---|---|---|"]
        for name, column, data_type, comment in columns:
            if name == table:
                definition = (comment or "").replace("|", "\\|")
                lines.append(f"| `{column}` | {data_type} | {definition} |")
        if table in MART_EXAMPLES:
            lines += ["", "```sql", MART_EXAMPLES[table], "```"]
    return "\n".join(lines) + "\n"


def export_marts(warehouse: Path, directory: Path, file_format: str = "parquet") -> dict[Path, int]:
    """Every mart of the published file as `<directory>/<mart>.parquet` (written beside and
    renamed over, so a reader never sees half a file); returns each file's rows."""
    if file_format != "parquet":
        raise ValueError(f"unknown export format {file_format!r}")
    directory.mkdir(parents=True, exist_ok=True)
    con = connect_read_only(warehouse)
    written = {}
    try:
        names = [
            name
            for (name,) in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
                "AND schema_name = 'marts' ORDER BY table_name"
            ).fetchall()
        ]
        for name in names:
            target = directory / f"{name}.parquet"
            temporary = directory / f".{name}.parquet.tmp"
            con.execute(
                f"COPY ({in_key_order(name)}) TO '{temporary}' (FORMAT parquet, COMPRESSION zstd)"
            )
            temporary.replace(target)
            written[target] = con.execute(f"SELECT count(*) FROM marts.{name}").fetchone()[0]
    finally:
        con.close()
    return written


@dataclass
class Status:
    """What an operator (or a monitor) asks of the warehouse: the last runs, each source's
    newest data, what quarantine holds and the last run's failed checks."""

    runs: pl.DataFrame  # one row per run, latest first, with the whole run's counts
    freshness: pl.DataFrame  # source, newest_at
    held: pl.DataFrame  # source, rows
    failed_checks: int


def status(warehouse: Path, runs: int = 5) -> Status:
    """The last `runs` runs and the state of the sources, from the published file."""
    con = connect_read_only(warehouse)
    try:
        last_runs = con.execute(
            "SELECT run_id, run_mode, run_status, run_started_at, run_finished_at, "
            "date_diff('millisecond', run_started_at, run_finished_at) / 1000.0 AS seconds, "
            "rows_read, rows_loaded, rows_duplicate, rows_quarantined, message "
            "FROM ops.pipeline_runs WHERE source = '*' ORDER BY run_started_at DESC LIMIT ?",
            [runs],
        ).pl()
        freshness = con.execute("SELECT * FROM ops.source_freshness ORDER BY source").pl()
        held = con.execute(
            "SELECT source, count(*) AS rows FROM quarantine.rejected_rows "
            "GROUP BY source ORDER BY source"
        ).pl()
        failed = con.execute(
            f"SELECT count(*) FROM ops.validation_results WHERE NOT success AND run_id = {LAST_RUN}"
        ).fetchone()
    finally:
        con.close()
    return Status(last_runs, freshness, held, int(failed[0]) if failed else 0)
