"""Hand-made core data sets with hand-worked expectations, so that the SQL reference of the marts
can itself be trusted. Every expected figure is derived in the comments next to it."""

from datetime import date, datetime, timedelta

import duckdb
import polars as pl
import pytest

from tests.reference.core_schema import create_core_tables
from tests.reference.reference_marts import reference_marts

D = datetime


# --------------------------------------------------------------------------------------------
# Row builders (only the columns that matter get arguments) and lookups
# --------------------------------------------------------------------------------------------


def agent(
    agent_id: str,
    department: str,
    deployed_at: datetime,
    hourly_cost_usd: float = 1.0,
    deployment_status: str = "deployed",
) -> dict[str, object]:
    return {
        "agent_id": agent_id,
        "agent_class": f"{department.title()}Agent",
        "department": department,
        "deployed_at": deployed_at,
        "deployment_status": deployment_status,
        "hourly_cost_usd": hourly_cost_usd,
    }


def task(
    agent_id: str, completed_at: datetime, success_pct: float = 100.0, execution_time_s: float = 1.0
) -> dict[str, object]:
    return {
        "agent_id": agent_id,
        "task_type": "report_generation",
        "execution_time_s": execution_time_s,
        "success_pct": success_pct,
        "completed_at": completed_at,
    }


def beat(
    agent_id: str,
    ts: datetime,
    task_queue: int = 0,
    message_queue: int = 0,
    status: str = "ok",
    current_task_type: str | None = None,
) -> dict[str, object]:
    return {
        "agent_id": agent_id,
        "ts": ts,
        "status": status,
        "task_queue": task_queue,
        "message_queue": message_queue,
        "current_task_type": current_task_type,
    }


def message(
    message_id: str,
    sender: str,
    receiver: str,
    sent_at: datetime,
    received_at: datetime | None,
    responded_at: datetime | None,
    status: str,
) -> dict[str, object]:
    return {
        "message_id": message_id,
        "sender_agent_id": sender,
        "receiver_agent_id": receiver,
        "message_type": "request",
        "sent_at": sent_at,
        "received_at": received_at,
        "responded_at": responded_at,
        "status": status,
    }


def workflow(
    workflow_id: str,
    workflow_name: str,
    participants: list[str],
    started_at: datetime,
    completed_at: datetime | None,
    status: str,
    errors: int = 0,
    errors_recovered: int = 0,
) -> dict[str, object]:
    return {
        "workflow_id": workflow_id,
        "workflow_name": workflow_name,
        "initiator_agent_id": participants[0],
        "participant_agent_ids": participants,
        "started_at": started_at,
        "completed_at": completed_at,
        "status": status,
        "errors": errors,
        "errors_recovered": errors_recovered,
    }


def metric(metric_date: date, department: str, metric_name: str, value: float) -> dict[str, object]:
    return {
        "metric_date": metric_date,
        "department": department,
        "metric_name": metric_name,
        "value": value,
    }


def target(metric_name: str, start: date, end: date, value: float) -> dict[str, object]:
    return {
        "metric_name": metric_name,
        "period_start": start,
        "period_end": end,
        "target_value": value,
    }


def core_db(**tables: list[dict[str, object]]) -> duckdb.DuckDBPyConnection:
    """An in-memory database with the core tables of docs/design.md holding the given rows."""
    con = duckdb.connect()
    create_core_tables(con)
    for table, rows in tables.items():
        for row in rows:
            columns = ", ".join(row)
            marks = ", ".join("?" for _ in row)
            con.execute(
                f"INSERT INTO core.{table} ({columns}) VALUES ({marks})", list(row.values())
            )
    return con


def one(df: pl.DataFrame, **keys: object) -> dict[str, object]:
    rows = df.filter(*[pl.col(k) == v for k, v in keys.items()]).to_dicts()
    assert len(rows) == 1, (keys, rows)
    return rows[0]


def keys(df: pl.DataFrame, *columns: str) -> set[tuple[object, ...]]:
    return set(df.select(columns).iter_rows())


# --------------------------------------------------------------------------------------------
# Uptime: overlapping heartbeats, a heartbeat across midnight, a deployment mid-day, idle agent
# --------------------------------------------------------------------------------------------


@pytest.fixture
def uptime_db() -> duckdb.DuckDBPyConnection:
    # 2026-03-01 is a Sunday, 2026-03-02 a Monday.
    return core_db(
        dim_agents=[
            agent("a1", "ops", D(2026, 3, 2, 12, 0, 0), hourly_cost_usd=36.0),
            agent("idle", "ops", D(2026, 3, 1, 0, 0, 0), hourly_cost_usd=10.0),
        ],
        fct_heartbeats=[
            beat("a1", D(2026, 3, 2, 11, 59, 30)),  # before deployment: only [12:00, 12:00:30)
            beat("a1", D(2026, 3, 2, 12, 0, 0)),  # [12:00, 12:01)
            beat("a1", D(2026, 3, 2, 12, 0, 30)),  # overlaps: union so far [12:00, 12:01:30)
            beat("a1", D(2026, 3, 2, 23, 59, 30)),  # 30 s on the 2nd, 30 s on the 3rd
            beat("a1", D(2026, 3, 3, 6, 0, 0)),  # = as_of: clipped to nothing
        ],
    )


def test_uptime_counts_the_union_clipped_to_deployment_midnight_and_as_of(uptime_db) -> None:
    agents = reference_marts(uptime_db)["agent_kpis"]

    # scope [12:00, 24:00) = 43,200 s; covered 90 s + 30 s before midnight = 120 s
    day1 = one(agents, period="day", period_start=date(2026, 3, 2), agent_id="a1")
    assert day1["uptime_pct"] == pytest.approx(120 / 43_200)
    assert day1["uptime_hours"] == pytest.approx(120 / 3_600)
    assert day1["operating_cost_usd"] == pytest.approx(36.0 * 120 / 3_600)  # 1.20
    assert day1["is_complete"] is True

    # scope [00:00, as_of 06:00) = 21,600 s; covered 30 s after midnight
    day2 = one(agents, period="day", period_start=date(2026, 3, 3), agent_id="a1")
    assert day2["uptime_pct"] == pytest.approx(30 / 21_600)
    assert day2["uptime_hours"] == pytest.approx(30 / 3_600)
    assert day2["is_complete"] is False

    # the week and the month share the scope [Mar 2 12:00, Mar 3 06:00) = 64,800 s, 150 s covered
    for period, start in [("week", date(2026, 3, 2)), ("month", date(2026, 3, 1))]:
        row = one(agents, period=period, period_start=start, agent_id="a1")
        assert row["uptime_pct"] == pytest.approx(150 / 64_800)
        assert row["uptime_hours"] == pytest.approx(150 / 3_600)

    # no a1 row before the day of its deployment
    assert keys(agents.filter(pl.col("agent_id") == "a1"), "period", "period_start") == {
        ("day", date(2026, 3, 2)),
        ("day", date(2026, 3, 3)),
        ("week", date(2026, 3, 2)),
        ("month", date(2026, 3, 1)),
    }


def test_uptime_interval_is_configurable(uptime_db) -> None:
    agents = reference_marts(uptime_db, heartbeat_interval_s=30.0)["agent_kpis"]
    # 30 s beats: 11:59:30 lies wholly before deployment; 12:00 and 12:00:30 give 60 s;
    # 23:59:30 gives 30 s before midnight and nothing after
    day1 = one(agents, period="day", period_start=date(2026, 3, 2), agent_id="a1")
    assert day1["uptime_hours"] == pytest.approx(90 / 3_600)
    day2 = one(agents, period="day", period_start=date(2026, 3, 3), agent_id="a1")
    assert day2["uptime_pct"] == 0.0


def test_idle_agent_has_rows_with_zero_counts_and_null_ratios(uptime_db) -> None:
    marts = reference_marts(uptime_db)
    agents = marts["agent_kpis"]
    idle = agents.filter(pl.col("agent_id") == "idle")
    # deployed Sunday Mar 1, as_of Tue Mar 3: the ISO week of Mar 1 starts Monday Feb 23
    assert keys(idle, "period", "period_start", "period_end") == {
        ("day", date(2026, 3, 1), date(2026, 3, 2)),
        ("day", date(2026, 3, 2), date(2026, 3, 3)),
        ("day", date(2026, 3, 3), date(2026, 3, 4)),
        ("week", date(2026, 2, 23), date(2026, 3, 2)),
        ("week", date(2026, 3, 2), date(2026, 3, 9)),
        ("month", date(2026, 3, 1), date(2026, 4, 1)),
    }
    row = one(idle, period="day", period_start=date(2026, 3, 1))
    assert row["tasks_total"] == 0
    assert row["messages_received"] == 0
    assert row["errors_logged"] == 0
    assert row["workflows_participated"] == 0
    assert row["uptime_pct"] == 0.0  # a full day of scope, nothing covered
    assert row["uptime_hours"] == 0.0
    assert row["operating_cost_usd"] == 0.0
    for column in [
        "success_rate",
        "error_rate",
        "exec_time_avg_s",
        "exec_time_p95_s",
        "exec_time_max_s",
        "response_time_avg_s",
        "message_delivery_rate",
        "tasks_per_uptime_hour",
        "cpu_avg_pct",
        "collaboration_efficiency",
        "cost_per_task_usd",
    ]:
        assert row[column] is None, column
    assert row["health_status"] == "unknown"
    assert row["rank_overall"] == 1

    week = one(idle, period="week", period_start=date(2026, 3, 2))
    assert week["uptime_pct"] == 0.0
    assert week["is_complete"] is False

    # department uptime: sum covered / sum scope = (120 + 0) / (43,200 + 86,400)
    ops = one(marts["department_kpis"], period="day", period_start=date(2026, 3, 2))
    assert ops["uptime_pct"] == pytest.approx(120 / 129_600)
    assert ops["operating_cost_usd"] == pytest.approx(1.2)
    assert ops["agents_total"] == 2
    assert ops["agents_active"] == 1  # a1 has heartbeats, idle has nothing


# --------------------------------------------------------------------------------------------
# Task and message statistics, percentiles, ISO weeks across a month boundary
# --------------------------------------------------------------------------------------------


@pytest.fixture
def tasks_db() -> duckdb.DuckDBPyConnection:
    return core_db(
        dim_agents=[
            agent("p1", "finance", D(2026, 2, 20, 9, 0, 0)),
            agent("p2", "finance", D(2026, 2, 20, 9, 0, 0)),
        ],
        fct_task_runs=[
            task("p1", D(2026, 2, 27, 10, 0, 0), 100.0, 10.0),  # Friday
            task("p1", D(2026, 3, 1, 10, 0, 0), 100.0, 1.0),  # Sunday, same ISO week
            task("p1", D(2026, 3, 1, 11, 0, 0), 0.0, 2.0),
            task("p1", D(2026, 3, 1, 12, 0, 0), 50.0, 3.0),
            task("p1", D(2026, 3, 1, 13, 0, 0), 100.0, 4.0),
        ],
        fct_messages=[
            message(
                "m1",
                "p2",
                "p1",
                D(2026, 3, 1, 9, 0, 0),
                D(2026, 3, 1, 9, 0, 0),
                D(2026, 3, 1, 9, 0, 1),
                "delivered",
            ),
            message(
                "m2",
                "p2",
                "p1",
                D(2026, 3, 1, 9, 5, 0),
                D(2026, 3, 1, 9, 5, 0),
                D(2026, 3, 1, 9, 5, 3),
                "delivered",
            ),
            message(
                "m3", "p2", "p1", D(2026, 3, 1, 9, 9, 0), D(2026, 3, 1, 9, 9, 0), None, "delivered"
            ),
            message("m4", "p2", "p1", D(2026, 3, 1, 9, 10, 0), None, None, "pending"),
        ],
        fct_heartbeats=[beat("p1", D(2026, 3, 2, 8, 0, 0))],  # as_of, a Monday
    )


def test_percentiles_interpolate_linearly_over_an_iso_week_across_months(tasks_db) -> None:
    agents = reference_marts(tasks_db)["agent_kpis"]
    p1 = agents.filter(pl.col("agent_id") == "p1")

    # ISO week Mon Feb 23 .. Sun Mar 1 holds all five tasks: times 1, 2, 3, 4, 10
    week = one(p1, period="week", period_start=date(2026, 2, 23))
    assert week["period_end"] == date(2026, 3, 2)
    assert week["tasks_total"] == 5
    assert week["tasks_succeeded"] == 3
    assert week["tasks_failed"] == 1
    assert week["success_rate"] == pytest.approx((100 + 100 + 0 + 50 + 100) / 5 / 100)  # 0.70
    assert week["error_rate"] == pytest.approx(1 / 5)
    assert week["exec_time_avg_s"] == pytest.approx(4.0)
    assert week["exec_time_p50_s"] == pytest.approx(3.0)
    # p95: position 0.95 * (5 - 1) = 3.8 -> 4 + 0.8 * (10 - 4) = 8.8
    assert week["exec_time_p95_s"] == pytest.approx(8.8)
    assert week["exec_time_max_s"] == 10.0

    # the day of Mar 1: times 1, 2, 3, 4 -> p50 2.5; p95 at 2.85 -> 3 + 0.85 * 1 = 3.85
    day = one(p1, period="day", period_start=date(2026, 3, 1))
    assert day["exec_time_p50_s"] == pytest.approx(2.5)
    assert day["exec_time_p95_s"] == pytest.approx(3.85)

    # the months split the week: February has the 10 s task only
    feb = one(p1, period="month", period_start=date(2026, 2, 1))
    assert (feb["tasks_total"], feb["exec_time_p95_s"]) == (1, 10.0)
    assert one(p1, period="month", period_start=date(2026, 3, 1))["tasks_total"] == 4

    # deployed Fri Feb 20 (week of Feb 16), as_of Mon Mar 2 (week of Mar 2)
    assert {s for (s,) in p1.filter(pl.col("period") == "week").select("period_start").rows()} == {
        date(2026, 2, 16),
        date(2026, 2, 23),
        date(2026, 3, 2),
    }


def test_message_counts_and_response_time_percentile(tasks_db) -> None:
    agents = reference_marts(tasks_db)["agent_kpis"]
    p1 = one(agents, period="day", period_start=date(2026, 3, 1), agent_id="p1")
    # m4 was never received; of m1..m3, two were answered after 1 s and 3 s
    assert p1["messages_received"] == 3
    assert p1["messages_responded"] == 2
    assert p1["response_time_avg_s"] == pytest.approx(2.0)
    # p95 of (1, 3): position 0.95 -> 1 + 0.95 * 2 = 2.9
    assert p1["response_time_p95_s"] == pytest.approx(2.9)
    assert p1["messages_sent"] == 0
    assert p1["message_delivery_rate"] is None

    p2 = one(agents, period="day", period_start=date(2026, 3, 1), agent_id="p2")
    # sent four: three delivered, one pending (neither delivered nor failed)
    assert p2["messages_sent"] == 4
    assert p2["message_delivery_rate"] == 1.0


# --------------------------------------------------------------------------------------------
# Health status and alerts at the exact thresholds
# --------------------------------------------------------------------------------------------


def _answered(message_id: str, receiver: str, response_s: float) -> dict[str, object]:
    """A message `receiver` got on 2026-06-01 10:00 and answered after `response_s` seconds."""
    received = D(2026, 6, 1, 10, 0, 0)
    responded = received + timedelta(seconds=response_s)
    return message(message_id, "quiet", receiver, received, received, responded, "delivered")


@pytest.fixture
def health_db() -> duckdb.DuckDBPyConnection:
    day = D(2026, 6, 1, 9, 0, 0)
    names = ["h1", "h2", "h3", "h4", "h5", "h6", "h7", "h9", "quiet"]
    return core_db(
        dim_agents=[agent(name, "ops", D(2026, 6, 1, 0, 0, 0)) for name in names],
        fct_task_runs=[
            task("h1", day, 95.0),  # s = 0.95 exactly: green
            task("h2", day, 80.0),  # s = 0.80 exactly: not red, not green -> yellow
            task("h3", day, 79.0),  # s = 0.79: red
            task("h4", day, 100.0),
            task("h6", day, 100.0),
            task("h7", day, 100.0),
            task("h9", day, 50.0),
        ],
        fct_messages=[
            _answered("r4", "h4", 2.0),  # r = 2 exactly: not green -> yellow
            _answered("r5", "h5", 5.0),  # r = 5 exactly, no tasks: not red -> yellow
            _answered("r6", "h6", 5.5),  # red
            _answered("r7", "h7", 1.5),  # green
            _answered("r9", "h9", 6.0),  # red, as is s = 0.5
        ],
        fct_heartbeats=[beat("quiet", D(2026, 6, 1, 23, 0, 0))],  # as_of
    )


def test_health_status_at_the_threshold_boundaries(health_db) -> None:
    agents = reference_marts(health_db)["agent_kpis"].filter(pl.col("period") == "day")
    status = dict(agents.select("agent_id", "health_status").iter_rows())
    assert status == {
        "h1": "green",
        "h2": "yellow",
        "h3": "red",
        "h4": "yellow",
        "h5": "yellow",
        "h6": "red",
        "h7": "green",
        "h9": "red",
        "quiet": "unknown",  # neither indicator known
    }


def test_health_thresholds_are_configuration(health_db) -> None:
    agents = reference_marts(health_db, success_green=0.80, response_red_s=4.0)["agent_kpis"]
    status = dict(
        agents.filter(pl.col("period") == "day").select("agent_id", "health_status").rows()
    )
    assert status["h2"] == "green"  # 0.80 >= 0.80
    assert status["h5"] == "red"  # 5 > 4


def test_alerts_give_one_row_per_metric_at_the_most_severe_level(health_db) -> None:
    alerts = reference_marts(health_db)["alerts"]
    assert alerts.columns == [
        "period_start",
        "agent_id",
        "department",
        "metric",
        "level",
        "value",
        "threshold",
    ]
    rows = {
        (r["agent_id"], r["metric"], r["level"], round(r["value"], 9), r["threshold"])
        for r in alerts.to_dicts()
    }
    assert rows == {
        ("h2", "success_rate", "warning", 0.8, 0.95),  # 0.80 is not < 0.80
        ("h3", "success_rate", "critical", 0.79, 0.80),
        ("h5", "response_time_avg_s", "warning", 5.0, 2.0),  # 5 is not > 5; r = 2 (h4): none
        ("h6", "response_time_avg_s", "critical", 5.5, 5.0),
        ("h9", "success_rate", "critical", 0.5, 0.80),  # no extra warning row
        ("h9", "response_time_avg_s", "critical", 6.0, 5.0),
    }
    assert set(alerts["period_start"]) == {date(2026, 6, 1)}
    assert set(alerts["department"]) == {"ops"}


# --------------------------------------------------------------------------------------------
# A small platform: departments, system, workflows, ranks, agent_health
# --------------------------------------------------------------------------------------------


@pytest.fixture
def platform_db() -> duckdb.DuckDBPyConnection:
    may1 = D(2026, 5, 1, 0, 0, 0)
    return core_db(
        dim_agents=[
            agent("f1", "finance", may1, 1.0),
            agent("f2", "finance", may1, 2.0),
            agent("f3", "finance", may1, 1.0),
            agent("i1", "finance", may1, 1.0),
            agent("m1", "marketing", may1, 1.0),
            agent("m3", "marketing", may1, 1.0),
            agent("m2", "marketing", D(2026, 5, 10, 0, 0, 0), 1.0, deployment_status="failed"),
        ],
        fct_task_runs=[
            task("f1", D(2026, 5, 3, 12, 0, 0), 100.0, 7.0),  # exactly as_of - 24 h
            task("f1", D(2026, 5, 4, 8, 0, 0), 100.0, 1.0),
            task("f1", D(2026, 5, 4, 8, 30, 0), 100.0, 2.0),
            task("f1", D(2026, 5, 4, 9, 0, 0), 0.0, 3.0),
            task("f2", D(2026, 5, 4, 10, 0, 0), 100.0, 4.0),
            task("f2", D(2026, 5, 4, 10, 30, 0), 100.0, 5.0),
            task("f3", D(2026, 5, 4, 12, 30, 0), 0.0, 6.0),  # after as_of, same day
            task("f3", D(2026, 5, 5, 1, 0, 0), 100.0, 1.0),  # after as_of, next day
            task("m1", D(2026, 5, 4, 11, 0, 0), 100.0, 1.0),
            task("m1", D(2026, 5, 4, 11, 10, 0), 90.0, 1.0),
            task("m3", D(2026, 5, 4, 11, 20, 0), 100.0, 1.0),
            task("m3", D(2026, 5, 4, 11, 30, 0), 90.0, 1.0),
        ],
        fct_heartbeats=[
            beat("f1", D(2026, 5, 4, 11, 58, 0), 2, 1, "ok", "report_generation"),
            beat("f1", D(2026, 5, 4, 12, 0, 0), 4, 3, "degraded", None),  # as_of
            beat("f2", D(2026, 5, 4, 11, 58, 30), 0, 0),
            beat("m1", D(2026, 5, 3, 8, 0, 0), 6, 2),
            beat("m3", D(2026, 5, 4, 11, 59, 0), 2, 0),
        ],
        fct_messages=[
            message(
                "msg1",
                "f1",
                "m1",
                D(2026, 5, 4, 9, 0, 0),
                D(2026, 5, 4, 9, 0, 1),
                D(2026, 5, 4, 9, 0, 4),
                "delivered",
            ),
            message(
                "msg2",
                "m1",
                "f1",
                D(2026, 5, 4, 9, 10, 0),
                D(2026, 5, 4, 9, 10, 0),
                D(2026, 5, 4, 9, 10, 1),
                "delivered",
            ),
            message("msg3", "f2", "m1", D(2026, 5, 4, 9, 20, 0), None, None, "failed"),
            message(
                "msg4",
                "f1",
                "f2",
                D(2026, 5, 4, 10, 0, 0),
                D(2026, 5, 4, 10, 0, 0),
                None,
                "delivered",
            ),
            message("msg5", "f2", "f1", D(2026, 5, 4, 11, 0, 0), None, None, "pending"),
        ],
        fct_workflow_runs=[
            workflow(
                "w1",
                "close",
                ["f1", "f2"],
                D(2026, 5, 4, 8, 0),
                D(2026, 5, 4, 8, 10),
                "completed",
                2,
                1,
            ),
            workflow(
                "w2",
                "close",
                ["f1", "m1"],
                D(2026, 5, 4, 9, 0),
                D(2026, 5, 4, 9, 5),
                "failed",
                1,
                1,
            ),
            workflow("w3", "close", ["f1"], D(2026, 5, 4, 10, 0), None, "running"),
            workflow(
                "w4",
                "nurture",
                ["m1", "m3"],
                D(2026, 5, 4, 10, 0),
                D(2026, 5, 4, 10, 1),
                "completed",
            ),
            # before anyone's deployment: activity outside [deployed_at, as_of]
            workflow(
                "w5",
                "nurture",
                ["m1", "f1"],
                D(2026, 4, 30, 10, 0),
                D(2026, 4, 30, 10, 30),
                "completed",
            ),
            workflow(
                "w6", "solo", ["m3", "m3"], D(2026, 5, 4, 11, 0), D(2026, 5, 4, 11, 1), "completed"
            ),
            workflow("w7", "sync", ["f2"], D(2026, 5, 4, 11, 30), None, "running"),
        ],
        fct_resource_samples=[
            {"agent_id": "f1", "ts": D(2026, 5, 4, 9, 0), "cpu_pct": 10.0, "memory_mb": 100.0},
            {"agent_id": "f1", "ts": D(2026, 5, 4, 10, 0), "cpu_pct": 30.0, "memory_mb": 300.0},
        ],
        fct_agent_errors=[
            {"agent_id": "f1", "ts": D(2026, 5, 4, 9, 30), "error_type": "TimeoutError"},
        ],
        fct_business_metrics=[
            metric(date(2026, 5, 4), "finance", "revenue_usd", 100.0),
            metric(date(2026, 5, 4), "finance", "leads_generated", 0.0),
            metric(date(2026, 5, 4), "finance", "conversions", 0.0),
            metric(date(2026, 5, 4), "finance", "predictions_total", 10.0),
            metric(date(2026, 5, 4), "finance", "predictions_correct", 7.0),
            metric(date(2026, 5, 3), "marketing", "seo_score", 80.0),
            metric(date(2026, 5, 4), "marketing", "seo_score", 90.0),
            metric(date(2026, 5, 4), "marketing", "leads_generated", 4.0),
            metric(date(2026, 5, 4), "marketing", "conversions", 1.0),
            metric(date(2026, 5, 4), "legal", "revenue_usd", 1000.0),  # no registered agent
        ],
    )


MAY4 = date(2026, 5, 4)


def test_agent_rows_of_a_busy_day(platform_db) -> None:
    agents = reference_marts(platform_db)["agent_kpis"]
    day = agents.filter(pl.col("period") == "day", pl.col("period_start") == MAY4)
    assert set(day["agent_id"]) == {"f1", "f2", "f3", "i1", "m1", "m3"}  # m2: deployed May 10

    f1 = one(day, agent_id="f1")
    assert (f1["department"], f1["agent_class"]) == ("finance", "FinanceAgent")
    assert (f1["tasks_total"], f1["tasks_succeeded"], f1["tasks_failed"]) == (3, 2, 1)
    assert f1["success_rate"] == pytest.approx(2 / 3)
    assert f1["messages_received"] == 1  # msg2, answered after 1 s
    assert f1["response_time_avg_s"] == pytest.approx(1.0)
    assert f1["messages_sent"] == 2  # msg1 and msg4, both delivered
    assert f1["message_delivery_rate"] == 1.0
    # [11:58, 11:59) + [12:00, 12:01) clipped at as_of 12:00 -> 60 s of a 43,200 s scope
    assert f1["uptime_pct"] == pytest.approx(60 / 43_200)
    assert f1["tasks_per_uptime_hour"] == pytest.approx(3 / (60 / 3_600))  # 180
    assert (f1["cpu_avg_pct"], f1["cpu_max_pct"]) == (20.0, 30.0)
    assert (f1["memory_avg_mb"], f1["memory_max_mb"]) == (200.0, 300.0)
    assert f1["errors_logged"] == 1
    # w1 completed, w2 failed, w3 running
    assert (f1["workflows_participated"], f1["workflows_succeeded"]) == (3, 1)
    assert f1["collaboration_efficiency"] == pytest.approx(0.5)
    assert f1["operating_cost_usd"] == pytest.approx(1.0 / 60)
    assert f1["cost_per_task_usd"] == pytest.approx(1.0 / 60 / 3)
    assert f1["health_status"] == "red"
    assert f1["is_complete"] is False

    f2 = one(day, agent_id="f2")
    assert (f2["messages_received"], f2["messages_responded"]) == (1, 0)
    assert f2["response_time_avg_s"] is None
    assert f2["message_delivery_rate"] == 0.0  # msg3 failed, msg5 pending: 0 / (0 + 1)
    assert f2["collaboration_efficiency"] == 1.0  # w1 completed, w7 running: 1 / (1 + 0)
    assert f2["operating_cost_usd"] == pytest.approx(2.0 / 60)
    assert f2["health_status"] == "green"  # s = 1.0, r unknown

    f3 = one(day, agent_id="f3")
    assert f3["tasks_total"] == 1  # the 12:30 task, after as_of but on the day
    assert f3["uptime_pct"] == 0.0
    assert f3["tasks_per_uptime_hour"] is None  # zero denominator
    assert f3["collaboration_efficiency"] is None

    m1 = one(day, agent_id="m1")
    assert m1["success_rate"] == pytest.approx(0.95)
    # msg1: received 09:00:01, answered 09:00:04
    assert m1["response_time_avg_s"] == pytest.approx(3.0)
    assert m1["health_status"] == "yellow"


def test_ranks_share_ties_and_put_null_success_rates_last(platform_db) -> None:
    agents = reference_marts(platform_db)["agent_kpis"]
    day = agents.filter(pl.col("period") == "day", pl.col("period_start") == MAY4)
    ranks = {
        r[0]: (r[1], r[2])
        for r in day.select("agent_id", "rank_overall", "rank_in_department").rows()
    }
    # (succeeded, success rate): f2 (2, 1.0), f1 (2, 0.67), m1 = m3 (1, 0.95), f3 (0, 0.0),
    # i1 (0, NULL)
    assert ranks == {
        "f2": (1, 1),
        "f1": (2, 2),
        "m1": (3, 1),
        "m3": (3, 1),
        "f3": (5, 3),
        "i1": (6, 4),
    }


def test_activity_outside_deployment_and_after_as_of_gets_rows(platform_db) -> None:
    marts = reference_marts(platform_db)
    agents = marts["agent_kpis"]
    # w5 on Apr 30, before the May 1 deployment
    m1 = one(agents, period="day", period_start=date(2026, 4, 30), agent_id="m1")
    assert m1["uptime_pct"] is None  # scope [May 1, May 1) is empty
    assert m1["uptime_hours"] == 0.0
    assert m1["operating_cost_usd"] == 0.0
    assert (m1["workflows_participated"], m1["workflows_succeeded"]) == (1, 1)
    assert m1["is_complete"] is True
    # a task on May 5, after the as_of of May 4 12:00
    f3 = one(agents, period="day", period_start=date(2026, 5, 5), agent_id="f3")
    assert f3["tasks_total"] == 1
    assert f3["uptime_pct"] is None
    assert f3["is_complete"] is False
    assert keys(marts["system_kpis"].filter(pl.col("period") == "day"), "period_start") == {
        (date(2026, 4, 30),),
        (date(2026, 5, 1),),
        (date(2026, 5, 2),),
        (date(2026, 5, 3),),
        (MAY4,),
        (date(2026, 5, 5),),
    }
    assert keys(
        marts["department_kpis"].filter(pl.col("period_start") == date(2026, 5, 5)), "department"
    ) == {("finance",)}


def test_department_figures_come_from_facts_not_agent_rows(platform_db) -> None:
    departments = reference_marts(platform_db)["department_kpis"]
    finance = one(departments, period="day", period_start=MAY4, department="finance")
    assert finance["agents_total"] == 4
    assert finance["agents_active"] == 3  # f1, f2, f3 have a task or a heartbeat; i1 none
    assert (finance["agents_green"], finance["agents_yellow"], finance["agents_red"]) == (1, 0, 2)
    assert (finance["tasks_total"], finance["tasks_succeeded"], finance["tasks_failed"]) == (
        6,
        4,
        2,
    )
    # mean over the six tasks 100, 100, 0, 100, 100, 0, not the mean of agents' rates
    assert finance["success_rate"] == pytest.approx(400 / 6 / 100)
    assert finance["error_rate"] == pytest.approx(2 / 6)
    # times 1..6: mean 3.5, median 3.5, p95 at 4.75 -> 5 + 0.75 = 5.75
    assert finance["exec_time_avg_s"] == pytest.approx(3.5)
    assert finance["exec_time_p50_s"] == pytest.approx(3.5)
    assert finance["exec_time_p95_s"] == pytest.approx(5.75)
    assert finance["response_time_avg_s"] == pytest.approx(1.0)
    assert finance["uptime_pct"] == pytest.approx(120 / (4 * 43_200))
    assert finance["operating_cost_usd"] == pytest.approx(3.0 / 60)
    assert finance["revenue_usd"] == 100.0
    assert finance["lead_pipeline_usd"] == 0.0  # a sum over nothing
    assert finance["conversion_rate"] is None  # 0 conversions / 0 leads
    assert finance["prediction_accuracy"] == pytest.approx(0.7)
    assert finance["seo_score_avg"] is None
    assert finance["health_status"] == "red"
    assert finance["rank_success"] == 2

    marketing = one(departments, period="day", period_start=MAY4, department="marketing")
    assert marketing["agents_total"] == 2  # m2 deployed May 10
    assert marketing["error_rate"] == 0.0  # 0 of 4 tasks failed: 0, not NULL
    assert marketing["success_rate"] == pytest.approx(0.95)
    assert marketing["response_time_avg_s"] == pytest.approx(3.0)
    assert marketing["conversion_rate"] == pytest.approx(0.25)
    assert marketing["seo_score_avg"] == 90.0
    assert marketing["health_status"] == "yellow"
    assert marketing["rank_success"] == 1

    month = one(departments, period="month", period_start=date(2026, 5, 1), department="marketing")
    assert month["agents_total"] == 3  # m2 deployed before June 1, whatever its status
    assert month["seo_score_avg"] == pytest.approx(85.0)  # mean of the daily 80 and 90

    # Apr 30: rows exist through w5 only; nothing deployed yet
    april = one(departments, period="day", period_start=date(2026, 4, 30), department="marketing")
    assert april["agents_total"] == 0
    assert april["uptime_pct"] is None
    assert april["health_status"] == "unknown"
    assert "legal" not in set(departments["department"])


def test_system_figures(platform_db) -> None:
    system = reference_marts(platform_db)["system_kpis"]
    day = one(system, period="day", period_start=MAY4)
    assert (day["agents_registered"], day["agents_deployed"]) == (6, 6)
    assert day["deployment_success_rate"] == 1.0
    assert day["agents_active"] == 5
    assert day["agents_healthy"] == 2  # f2 and m3
    assert day["tasks_total"] == 10
    assert day["success_rate"] == pytest.approx((400 + 380) / 10 / 100)
    assert day["error_rate"] == pytest.approx(0.2)
    # times 1,1,1,1,1,2,3,4,5,6: p95 at 8.55 -> 5 + 0.55 = 5.55
    assert day["exec_time_p95_s"] == pytest.approx(5.55)
    assert day["response_time_avg_s"] == pytest.approx(2.0)  # (1 + 3) / 2
    assert (
        day["workflows_started"],
        day["workflows_completed"],
        day["workflows_failed"],
        day["workflows_running"],
    ) == (6, 3, 1, 2)
    assert day["workflow_completion_rate"] == pytest.approx(0.75)
    # cumulative: w1, w4, and w5 of Apr 30; w6 lists m3 twice, so it has one participant
    assert day["multi_agent_workflows_succeeded"] == 3
    assert day["cross_department_completion_rate"] == 0.0  # only w2 spans two, and it failed
    assert day["error_recovery_rate"] == pytest.approx(2 / 3)
    assert day["messages_total"] == 5
    assert day["communication_success_rate"] == pytest.approx(0.75)  # 3 / (3 + 1)
    assert day["avg_task_queue"] == pytest.approx(2.0)  # (2 + 4 + 0 + 2) / 4
    assert day["avg_message_queue"] == pytest.approx(1.0)  # (1 + 3 + 0 + 0) / 4
    assert day["operating_cost_usd"] == pytest.approx(4.0 / 60)

    month = one(system, period="month", period_start=date(2026, 5, 1))
    assert (month["agents_registered"], month["agents_deployed"]) == (7, 6)
    assert month["deployment_success_rate"] == pytest.approx(6 / 7)

    april = one(system, period="day", period_start=date(2026, 4, 30))
    assert april["agents_registered"] == 0
    assert april["deployment_success_rate"] is None
    assert april["multi_agent_workflows_succeeded"] == 1
    assert april["cross_department_completion_rate"] == 1.0
    assert april["error_recovery_rate"] is None  # 0 errors
    assert april["communication_success_rate"] is None
    assert april["avg_task_queue"] is None
    assert april["operating_cost_usd"] == 0.0
    assert (
        one(system, period="day", period_start=date(2026, 5, 3))["multi_agent_workflows_succeeded"]
        == 1
    )


def test_workflow_figures(platform_db) -> None:
    workflows = reference_marts(platform_db)["workflow_kpis"]
    close = one(workflows, period="day", period_start=MAY4, workflow_name="close")
    assert (close["runs"], close["completed"], close["failed"], close["running"]) == (3, 1, 1, 1)
    assert close["completion_rate"] == pytest.approx(0.5)
    # finished runs: 600 s and 300 s; p95 at 0.95 -> 300 + 0.95 * 300 = 585
    assert close["duration_avg_s"] == pytest.approx(450.0)
    assert close["duration_p95_s"] == pytest.approx(585.0)
    assert (close["errors"], close["errors_recovered"]) == (3, 2)
    assert close["recovery_rate"] == pytest.approx(2 / 3)
    assert close["departments_involved"] == 2
    assert close["is_cross_department"] is True

    nurture = one(workflows, period="day", period_start=MAY4, workflow_name="nurture")
    assert nurture["recovery_rate"] is None  # 0 errors
    assert (nurture["departments_involved"], nurture["is_cross_department"]) == (1, False)
    april = one(workflows, period="month", period_start=date(2026, 4, 1), workflow_name="nurture")
    assert (april["runs"], april["is_cross_department"]) == (1, True)

    sync = one(workflows, period="day", period_start=MAY4, workflow_name="sync")
    assert sync["completion_rate"] is None  # running only
    assert sync["duration_avg_s"] is None
    assert sync["duration_p95_s"] is None
    assert len(workflows.filter(pl.col("period") == "day", pl.col("period_start") == MAY4)) == 4


def test_agent_health_as_of_the_last_heartbeat(platform_db) -> None:
    health = reference_marts(platform_db)["agent_health"]
    assert len(health) == 7  # every registered agent

    f1 = one(health, agent_id="f1")
    assert f1["last_heartbeat_at"] == D(2026, 5, 4, 12, 0, 0)
    assert f1["seconds_since_heartbeat"] == 0.0
    assert f1["is_healthy"] is True
    assert (f1["last_status"], f1["current_task_type"]) == ("degraded", None)
    assert (f1["task_queue"], f1["message_queue"]) == (4, 3)
    # (May 3 12:00, May 4 12:00]: the May 3 12:00 task is out; 100, 100, 0 are in
    assert f1["success_rate_24h"] == pytest.approx(2 / 3)
    assert f1["response_time_avg_24h_s"] == pytest.approx(1.0)
    assert f1["health_status"] == "red"

    m3 = one(health, agent_id="m3")
    assert m3["seconds_since_heartbeat"] == 60.0
    assert m3["is_healthy"] is False  # 60 is not < 60
    assert m3["health_status"] == "green"

    f3 = one(health, agent_id="f3")  # never sent a heartbeat; its tasks are after as_of
    assert f3["last_heartbeat_at"] is None
    assert f3["seconds_since_heartbeat"] is None
    assert f3["is_healthy"] is False
    assert f3["task_queue"] is None
    assert f3["success_rate_24h"] is None
    assert f3["health_status"] == "unknown"

    m1 = one(health, agent_id="m1")
    assert m1["seconds_since_heartbeat"] == pytest.approx(28 * 3_600)  # May 3 08:00
    assert m1["health_status"] == "yellow"  # 0.95 and 3 s


# --------------------------------------------------------------------------------------------
# Business value: YTD restarting on 1 January, targets, as_of without heartbeats
# --------------------------------------------------------------------------------------------


@pytest.fixture
def business_db() -> duckdb.DuckDBPyConnection:
    return core_db(
        # costs 3,600 USD an hour: one covered second costs one dollar
        dim_agents=[agent("b1", "finance", D(2025, 12, 29, 0, 0, 0), 3_600.0)],
        fct_heartbeats=[
            beat("b1", D(2025, 12, 29, 10, 0, 0)),  # 60 USD on Dec 29, before any figure
            beat("b1", D(2026, 1, 1, 10, 0, 0)),  # 60 USD on Jan 1
            beat("b1", D(2026, 1, 3, 10, 0, 0)),  # as_of: clipped to nothing
        ],
        fct_business_metrics=[
            metric(date(2025, 12, 30), "finance", "revenue_usd", 100.0),
            metric(date(2025, 12, 31), "marketing", "revenue_usd", 200.0),
            metric(date(2025, 12, 31), "finance", "cost_savings_usd", 10.0),
            metric(date(2026, 1, 2), "finance", "revenue_usd", 30.0),
            metric(date(2026, 1, 2), "marketing", "lead_pipeline_usd", 40.0),
            metric(date(2026, 1, 2), "marketing", "leads_generated", 5.0),
        ],
        dim_business_targets=[
            target("revenue_usd", date(2026, 1, 1), date(2026, 12, 31), 1_000.0),
            target("revenue_usd", date(2026, 1, 2), date(2026, 1, 2), 500.0),
            # same start as the row above, later end: loses on Jan 2, wins from Jan 3
            target("revenue_usd", date(2026, 1, 2), date(2026, 1, 10), 700.0),
        ],
    )


def test_business_value_ytd_restarts_on_new_year(business_db) -> None:
    value = reference_marts(business_db)["business_value"]
    # first metric_date Dec 30 .. date(as_of) Jan 3, the later of it and the last metric_date
    assert value["date"].to_list() == [
        date(2025, 12, 30),
        date(2025, 12, 31),
        date(2026, 1, 1),
        date(2026, 1, 2),
        date(2026, 1, 3),
    ]
    assert value["revenue_usd"].to_list() == [100.0, 200.0, 0.0, 30.0, 0.0]
    assert value["revenue_ytd_usd"].to_list() == [100.0, 300.0, 0.0, 30.0, 30.0]
    assert value["cost_savings_ytd_usd"].to_list() == [0.0, 10.0, 0.0, 0.0, 0.0]
    assert value["lead_pipeline_usd"].to_list() == [0.0, 0.0, 0.0, 40.0, 0.0]
    assert value["lead_pipeline_ytd_usd"].to_list() == [0.0, 0.0, 0.0, 40.0, 40.0]
    assert value["operating_cost_usd"].to_list() == pytest.approx([0.0, 0.0, 60.0, 0.0, 0.0])
    # Dec 29's 60 USD precede the first metric_date but count in 2025's YTD
    assert value["operating_cost_ytd_usd"].to_list() == pytest.approx(
        [60.0, 60.0, 60.0, 60.0, 60.0]
    )

    dec31 = one(value, date=date(2025, 12, 31))
    assert dec31["expected_progress_pct"] == 1.0  # 365 / 365
    assert dec31["revenue_projected_annual_usd"] == pytest.approx(300.0)
    assert dec31["roi"] == pytest.approx((300 + 10 - 60) / 60)
    jan1 = one(value, date=date(2026, 1, 1))
    assert jan1["roi"] == pytest.approx(-1.0)  # (0 + 0 - 60) / 60
    assert jan1["expected_progress_pct"] == pytest.approx(1 / 365)


def test_business_value_targets_from_business_targets_else_defaults(business_db) -> None:
    value = reference_marts(business_db)["business_value"]
    # Dec: no row -> 50,000; Jan 1: the yearly 1,000; Jan 2: latest start, then earliest end
    assert value["revenue_target_usd"].to_list() == [50_000.0, 50_000.0, 1_000.0, 500.0, 700.0]
    assert value["lead_pipeline_target_usd"].to_list() == [80_000.0] * 5
    assert value["revenue_progress_pct"].to_list() == pytest.approx(
        [100 / 50_000, 300 / 50_000, 0.0, 30 / 500, 30 / 700]
    )
    assert value["lead_pipeline_progress_pct"].to_list() == pytest.approx(
        [0.0, 0.0, 0.0, 40 / 80_000, 40 / 80_000]
    )
    # 0.06 >= 2/365 and 0.043 >= 3/365; Jan 1: 0 < 1/365
    assert value["revenue_on_track"].to_list() == [False, False, False, True, True]
    assert one(value, date=date(2026, 1, 2))["revenue_projected_annual_usd"] == pytest.approx(
        30 / 2 * 365
    )

    other = reference_marts(business_db, default_revenue_target_usd=1_000.0)["business_value"]
    assert other["revenue_target_usd"].to_list()[:2] == [1_000.0, 1_000.0]


def test_as_of_without_heartbeats_and_zero_operating_cost_roi() -> None:
    con = core_db(
        dim_agents=[
            agent("n1", "ops", D(2026, 1, 4, 0, 0, 0)),
            agent("n2", "ops", D(2026, 1, 4, 0, 0, 0)),
        ],
        fct_task_runs=[task("n1", D(2026, 1, 5, 10, 0, 0))],
        fct_messages=[
            message(
                "x",
                "n2",
                "n1",
                D(2026, 1, 5, 23, 0, 0),
                D(2026, 1, 6, 8, 0, 0),
                D(2026, 1, 6, 9, 0, 0),  # latest timestamp: as_of
                "delivered",
            )
        ],
        # business figures do not move as_of
        fct_business_metrics=[
            metric(date(2026, 1, 2), "ops", "revenue_usd", 10.0),
            metric(date(2026, 1, 10), "ops", "revenue_usd", 5.0),
        ],
    )
    marts = reference_marts(con)
    agents = marts["agent_kpis"].filter(pl.col("period") == "day")
    assert keys(agents.filter(pl.col("agent_id") == "n1"), "period_start", "is_complete") == {
        (date(2026, 1, 4), True),
        (date(2026, 1, 5), True),
        (date(2026, 1, 6), False),  # ends Jan 7, after as_of Jan 6 09:00
    }
    # a message counts for its sender on sent_at's day and for its receiver on received_at's
    assert one(agents, period_start=date(2026, 1, 5), agent_id="n2")["messages_sent"] == 1
    assert one(agents, period_start=date(2026, 1, 6), agent_id="n1")["messages_received"] == 1
    assert (
        one(agents, period_start=date(2026, 1, 6), agent_id="n1")["response_time_avg_s"] == 3_600.0
    )

    health = one(marts["agent_health"], agent_id="n1")
    assert health["is_healthy"] is False
    assert health["seconds_since_heartbeat"] is None
    assert health["success_rate_24h"] == 1.0  # Jan 5 10:00 is in (Jan 5 09:00, Jan 6 09:00]
    assert health["response_time_avg_24h_s"] == 3_600.0
    assert health["health_status"] == "red"

    value = marts["business_value"]
    assert value["date"].to_list()[0] == date(2026, 1, 2)
    assert value["date"].to_list()[-1] == date(2026, 1, 10)  # last metric_date, after as_of
    assert value["operating_cost_ytd_usd"].to_list() == [0.0] * 9
    assert value["roi"].to_list() == [None] * 9  # zero denominator


def test_empty_warehouse_gives_empty_marts_with_the_contract_columns() -> None:
    con = core_db()
    marts = reference_marts(con)
    assert {name: len(df) for name, df in marts.items()} == dict.fromkeys(marts, 0)
    assert marts["workflow_kpis"].columns == [
        "period",
        "period_start",
        "period_end",
        "workflow_name",
        "runs",
        "completed",
        "failed",
        "running",
        "completion_rate",
        "duration_avg_s",
        "duration_p95_s",
        "errors",
        "errors_recovered",
        "recovery_rate",
        "departments_involved",
        "is_cross_department",
    ]


def test_prediction_accuracy_over_no_correct_figure_is_zero_and_over_no_total_null() -> None:
    # "Counts and sums over nothing are 0": 0 correct of 50 is 0.0; 0 of 0 is NULL.
    con = core_db(
        dim_agents=[agent("f1", "finance", D(2026, 11, 1)), agent("o1", "ops", D(2026, 11, 1))],
        fct_heartbeats=[beat("f1", D(2026, 11, 23, 10, 0, 0))],  # as_of
        fct_business_metrics=[metric(date(2026, 11, 23), "finance", "predictions_total", 50.0)],
    )
    departments = reference_marts(con)["department_kpis"].filter(pl.col("period") == "day")
    day = date(2026, 11, 23)
    assert one(departments, period_start=day, department="finance")["prediction_accuracy"] == 0.0
    assert one(departments, period_start=day, department="ops")["prediction_accuracy"] is None


def test_an_agent_deployed_after_as_of_has_no_uptime_whatever_heartbeat_spans_it() -> None:
    # `late` is deployed at 10:00:30; as_of is 10:00:00 (a0's heartbeat). Its scope, from its
    # deployment to as_of, is empty: nothing is covered, though its own heartbeat at 09:59:59
    # spans [09:59:59, 10:00:59).
    con = core_db(
        dim_agents=[
            agent("a0", "finance", D(2026, 11, 1)),
            agent("late", "finance", D(2026, 11, 23, 10, 0, 30), hourly_cost_usd=3600.0),
        ],
        fct_heartbeats=[beat("late", D(2026, 11, 23, 9, 59, 59)), beat("a0", D(2026, 11, 23, 10))],
        fct_business_metrics=[metric(date(2026, 11, 23), "finance", "revenue_usd", 1.0)],
    )
    marts = reference_marts(con)
    agents = marts["agent_kpis"].filter(pl.col("period") == "day")
    late = one(agents, period_start=date(2026, 11, 23), agent_id="late")
    assert (late["uptime_hours"], late["operating_cost_usd"]) == (0.0, 0.0)
    costs = marts["business_value"].filter(pl.col("date") == date(2026, 11, 23))
    # a0's heartbeat is at as_of (covers nothing), so the day cost nothing (not -30 USD)
    assert costs["operating_cost_usd"].to_list() == [0.0]


def test_a_mean_response_time_of_exactly_2_seconds_is_2() -> None:
    # 0.010 + 4.044 + 1.946 = 6.000 s over 3: averaged as float seconds, 1.9999999999999998
    # (green); averaged in whole microseconds, 2.0 (not green: yellow).
    received = D(2026, 6, 1, 10, 0, 0)
    con = core_db(
        dim_agents=[agent("h", "ops", D(2026, 6, 1)), agent("quiet", "ops", D(2026, 6, 1))],
        fct_messages=[
            message(
                f"r{n}",
                "quiet",
                "h",
                received,
                received,
                received + timedelta(seconds=s),
                "delivered",
            )
            for n, s in enumerate([0.010, 4.044, 1.946])
        ],
    )
    marts = reference_marts(con)
    row = one(marts["agent_kpis"].filter(pl.col("period") == "day"), agent_id="h")
    assert (row["response_time_avg_s"], row["health_status"]) == (2.0, "yellow")
    health = one(marts["agent_health"], agent_id="h")
    assert health["response_time_avg_24h_s"] == 2.0
