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


def latest_complete_day(con: duckdb.DuckDBPyConnection) -> date | None:
    """The latest day whose period has ended by as_of."""
    row = con.execute(
        "SELECT max(period_start) FROM marts.agent_kpis WHERE period = 'day' AND is_complete"
    ).fetchone()
    return row[0] if row else None


def summary(warehouse: Path) -> Summary:
    """System KPIs of the latest complete day, its best and worst agents, departments with
    their health, that day's alerts, and the last run's row counts."""
    con = connect_read_only(warehouse)
    try:
        as_of_row = con.execute("SELECT max(as_of) FROM marts.agent_health").fetchone()
        day = latest_complete_day(con)
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
            "run_status, run_finished_at FROM ops.pipeline_runs WHERE run_id = ("
            "  SELECT run_id FROM ops.pipeline_runs ORDER BY run_started_at DESC LIMIT 1"
            ") ORDER BY source = '*', source"
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
    """The start of the latest `period` (day, week, month) that has ended by as_of."""
    con = connect_read_only(warehouse)
    try:
        row = con.execute(
            "SELECT max(period_start) FROM marts.agent_kpis WHERE period = ? AND is_complete",
            [period],
        ).fetchone()
    finally:
        con.close()
    return row[0] if row else None


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
                "FROM ops.validation_results WHERE NOT success AND run_id = ("
                "  SELECT run_id FROM ops.pipeline_runs ORDER BY run_started_at DESC LIMIT 1"
                ") ORDER BY table_name, expectation, column_name",
                [],
            ),
            freshness=rows("SELECT * FROM ops.source_freshness ORDER BY source", []),
            last_run=rows(
                "SELECT * FROM ops.pipeline_runs WHERE run_id = ("
                "  SELECT run_id FROM ops.pipeline_runs ORDER BY run_started_at DESC LIMIT 1"
                ") ORDER BY source = '*', source",
                [],
            ),
        )
    finally:
        con.close()
