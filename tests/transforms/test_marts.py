"""The marts of `contract/kpis.md`, one rule at a time, on hand-made core facts.

Every expected figure is worked out by hand in the test (in the comment beside it when it is
not obvious). Calendar facts used: 2026-11-23 is a Monday; 2027-01-01 a Friday, in the ISO week
starting Monday 2026-12-28; 2028 is a leap year (366 days, 29 February is day 60).
"""

from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from itertools import count

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from transforms import core
from transforms.marts import (
    Facts,
    KpiParams,
    activity_timestamps,
    agent_health,
    agent_kpis,
    alerts,
    as_of,
    business_value,
    department_kpis,
    health_status,
    period_marts,
    system_kpis,
    workflow_kpis,
)
from transforms.periods import PERIODS, periods_overlapping
from warehouse.catalog import MART_KEYS

D = datetime
PARAMS = KpiParams()
DEPLOYED = D(2026, 11, 1)  # the agents' default deployment, well before the facts
_ids = count(1)


# ---------------------------------------------------------------------------------------------
# Row builders: only the columns that matter get arguments; frames get the core dtypes.


def agent(
    agent_id: str,
    department: str = "finance",
    deployed_at: datetime = DEPLOYED,
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
        "task_id": next(_ids),
        "agent_id": agent_id,
        "task_type": "forecast",
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
    sender: str,
    receiver: str,
    sent_at: datetime,
    received_at: datetime | None = None,
    responded_at: datetime | None = None,
    status: str | None = None,
) -> dict[str, object]:
    number = next(_ids)
    return {
        "message_id": f"m{number}",
        "message_row_id": number,
        "sender_agent_id": sender,
        "receiver_agent_id": receiver,
        "message_type": "request",
        "sent_at": sent_at,
        "received_at": received_at,
        "responded_at": responded_at,
        "status": status or ("delivered" if received_at else "pending"),
        "updated_at": responded_at or received_at or sent_at,
    }


def responded(receiver: str, received_at: datetime, response_s: float) -> dict[str, object]:
    """A message `receiver` received at `received_at` and answered `response_s` later."""
    return message(
        "sender",
        receiver,
        received_at - timedelta(seconds=1),
        received_at,
        received_at + timedelta(seconds=response_s),
    )


def workflow(
    participants: list[str],
    started_at: datetime,
    status: str = "completed",
    completed_at: datetime | None = None,
    errors: int = 0,
    errors_recovered: int = 0,
    name: str = "quarterly_close",
) -> dict[str, object]:
    return {
        "workflow_id": f"w{next(_ids)}",
        "workflow_name": name,
        "initiator_agent_id": participants[0],
        "participant_agent_ids": participants,
        "started_at": started_at,
        "completed_at": completed_at,
        "status": status,
        "errors": errors,
        "errors_recovered": errors_recovered,
        "updated_at": completed_at or started_at,
    }


def resource(agent_id: str, ts: datetime, cpu_pct: float, memory_mb: float) -> dict[str, object]:
    return {"agent_id": agent_id, "ts": ts, "cpu_pct": cpu_pct, "memory_mb": memory_mb}


def error_event(agent_id: str, ts: datetime) -> dict[str, object]:
    return {"agent_id": agent_id, "ts": ts, "task_type": None, "error_type": "TimeoutError"}


def figure(
    metric_date: date,
    metric_name: str,
    value: float,
    department: str = "finance",
    recorded_at: datetime | None = None,
    metric_row_id: int | None = None,
) -> dict[str, object]:
    return {
        "metric_date": metric_date,
        "department": department,
        "metric_name": metric_name,
        "value": value,
        "recorded_at": recorded_at or D(metric_date.year, metric_date.month, metric_date.day, 23),
        "metric_row_id": metric_row_id if metric_row_id is not None else next(_ids),
    }


def target(metric_name: str, start: date, end: date, value: float) -> dict[str, object]:
    return {
        "metric_name": metric_name,
        "period_start": start,
        "period_end": end,
        "target_value": value,
    }


def frame(table: str, rows: Iterable[dict[str, object]]) -> pl.LazyFrame:
    schema = core.CORE_SCHEMAS[table]
    rows = list(rows)
    for row in rows:
        assert set(row) <= set(schema), set(row) - set(schema)
    return pl.DataFrame([{c: row.get(c) for c in schema} for row in rows], schema=schema).lazy()


def facts(
    agents: Sequence[dict[str, object]] = (),
    tasks: Sequence[dict[str, object]] = (),
    messages: Sequence[dict[str, object]] = (),
    workflows: Sequence[dict[str, object]] = (),
    heartbeats: Sequence[dict[str, object]] = (),
    resources: Sequence[dict[str, object]] = (),
    errors: Sequence[dict[str, object]] = (),
) -> Facts:
    registry = {a["agent_id"]: a["department"] for a in agents}
    return Facts(
        agents=frame("dim_agents", agents),
        # as core.task_facts does: the registry's department on every task
        tasks=frame(
            "fct_task_runs", [{**t, "department": registry.get(t["agent_id"])} for t in tasks]
        ),
        messages=frame("fct_messages", messages),
        workflows=frame("fct_workflow_runs", workflows),
        heartbeats=frame("fct_heartbeats", heartbeats),
        resources=frame("fct_resource_samples", resources),
        errors=frame("fct_agent_errors", errors),
    )


def periods(first: date, last: date, kinds: tuple[str, ...] = ("day",)) -> pl.LazyFrame:
    return periods_overlapping(first, last, kinds).lazy()


def run_agent_kpis(
    f: Facts,
    first: date,
    last: date,
    as_of_ts: datetime,
    kinds: tuple[str, ...] = ("day",),
    params: KpiParams = PARAMS,
) -> pl.DataFrame:
    return agent_kpis(f, periods(first, last, kinds), as_of_ts, params).collect()


def run_department_kpis(
    f: Facts,
    first: date,
    last: date,
    as_of_ts: datetime,
    kinds: tuple[str, ...] = ("day",),
    business: pl.LazyFrame | None = None,
) -> pl.DataFrame:
    p = periods(first, last, kinds)
    rows = agent_kpis(f, p, as_of_ts, PARAMS).collect().lazy()
    metrics = core.empty("fct_business_metrics") if business is None else business
    return department_kpis(f, rows, metrics, p, PARAMS).collect()


def run_system_kpis(
    f: Facts, first: date, last: date, as_of_ts: datetime, kinds: tuple[str, ...] = ("day",)
) -> pl.DataFrame:
    p = periods(first, last, kinds)
    rows = agent_kpis(f, p, as_of_ts, PARAMS).collect().lazy()
    return system_kpis(f, rows, p, PARAMS).collect()


def run_business_value(
    figures: Sequence[dict[str, object]],
    as_of_ts: datetime | None,
    targets: Sequence[dict[str, object]] = (),
    day_costs: Sequence[tuple[date, float]] = (),
) -> pl.DataFrame:
    costs = pl.LazyFrame(
        {
            "period_start": [d for d, _ in day_costs],
            "operating_cost_usd": [c for _, c in day_costs],
        },
        schema={"period_start": pl.Date, "operating_cost_usd": pl.Float64},
    )
    return business_value(
        frame("fct_business_metrics", figures),
        frame("dim_business_targets", targets),
        costs,
        as_of_ts,
        PARAMS,
    ).collect()


def one(rows: pl.DataFrame, **keys: object) -> dict[str, object]:
    matched = rows.filter(**keys)
    assert matched.height == 1, f"{matched.height} rows for {keys}"
    return matched.row(0, named=True)


def day(d: date, **keys: object) -> dict[str, object]:
    return {"period": "day", "period_start": d, **keys}


NOV23 = date(2026, 11, 23)
NOV24 = date(2026, 11, 24)
MIDNIGHT_24 = D(2026, 11, 24)


# ---------------------------------------------------------------------------------------------
# Uptime


def test_uptime_is_the_union_of_heartbeat_intervals_overlapping_beats_counted_once() -> None:
    f = facts(
        [agent("a1"), agent("a2")],
        heartbeats=[
            beat("a1", D(2026, 11, 23, 10, 5, 0)),
            beat("a1", D(2026, 11, 23, 10, 0, 30)),
            beat("a2", D(2026, 11, 23, 10, 0, 15)),  # another agent's beat: not a1's time
            beat("a1", D(2026, 11, 23, 10, 0, 0)),
        ],
    )
    rows = run_agent_kpis(f, NOV23, NOV23, MIDNIGHT_24)
    r = one(rows, **day(NOV23, agent_id="a1"))
    # [10:00:00, 10:01:30) is 90 s, [10:05, 10:06) 60 s; the scope is the whole day.
    assert r["uptime_hours"] == pytest.approx(150 / 3600)
    assert r["uptime_pct"] == pytest.approx(150 / 86_400)
    assert one(rows, **day(NOV23, agent_id="a2"))["uptime_hours"] == pytest.approx(60 / 3600)


def test_uptime_heartbeat_crossing_midnight_is_split_across_the_two_days() -> None:
    f = facts([agent("a1")], heartbeats=[beat("a1", D(2026, 11, 23, 23, 59, 30))])
    rows = run_agent_kpis(f, NOV23, NOV24, D(2026, 11, 25), kinds=PERIODS)
    assert one(rows, **day(NOV23, agent_id="a1"))["uptime_hours"] == pytest.approx(30 / 3600)
    assert one(rows, **day(NOV24, agent_id="a1"))["uptime_hours"] == pytest.approx(30 / 3600)
    week = one(rows, period="week", period_start=NOV23, agent_id="a1")
    assert week["uptime_hours"] == pytest.approx(60 / 3600)
    month = one(rows, period="month", period_start=date(2026, 11, 1), agent_id="a1")
    assert month["uptime_hours"] == pytest.approx(60 / 3600)


def test_uptime_overlapping_beats_across_midnight_are_united_on_each_day() -> None:
    f = facts(
        [agent("a1")],
        heartbeats=[
            beat("a1", D(2026, 11, 23, 23, 59, 30)),
            beat("a1", D(2026, 11, 23, 23, 59, 45)),
        ],
    )
    rows = run_agent_kpis(f, NOV23, NOV24, D(2026, 11, 25))
    # day 23: [23:59:30, 24:00) = 30 s; day 24: [00:00, 00:00:45) = 45 s
    assert one(rows, **day(NOV23, agent_id="a1"))["uptime_hours"] == pytest.approx(30 / 3600)
    assert one(rows, **day(NOV24, agent_id="a1"))["uptime_hours"] == pytest.approx(45 / 3600)


def test_uptime_beat_ending_exactly_at_midnight_stays_on_its_day() -> None:
    f = facts([agent("a1")], heartbeats=[beat("a1", D(2026, 11, 23, 23, 59, 0))])
    rows = run_agent_kpis(f, NOV23, NOV24, D(2026, 11, 25))
    assert one(rows, **day(NOV23, agent_id="a1"))["uptime_hours"] == pytest.approx(60 / 3600)
    assert one(rows, **day(NOV24, agent_id="a1"))["uptime_hours"] == 0.0


def test_uptime_scope_starts_at_a_mid_day_deployment() -> None:
    f = facts(
        [agent("a1", deployed_at=D(2026, 11, 23, 12, 0, 0))],
        # [11:59:30, 12:00:30) counts only from 12:00 (30 s); [18:00, 18:01) counts 60 s
        heartbeats=[beat("a1", D(2026, 11, 23, 11, 59, 30)), beat("a1", D(2026, 11, 23, 18))],
    )
    r = one(run_agent_kpis(f, NOV23, NOV23, MIDNIGHT_24), **day(NOV23, agent_id="a1"))
    # scope [12:00, 24:00) = 43 200 s
    assert r["uptime_hours"] == pytest.approx(90 / 3600)
    assert r["uptime_pct"] == pytest.approx(90 / 43_200)


def test_uptime_scope_ends_at_as_of() -> None:
    f = facts(
        [agent("a1", deployed_at=D(2026, 11, 1))],
        heartbeats=[beat("a1", D(2026, 11, 23, 5, 59, 30)), beat("a1", D(2026, 11, 23, 6, 0, 0))],
    )
    as_of_ts = D(2026, 11, 23, 6, 0, 0)
    rows = run_agent_kpis(f, NOV23, NOV23, as_of_ts, kinds=("day", "month"))
    r = one(rows, **day(NOV23, agent_id="a1"))
    # scope [00:00, 06:00) = 21 600 s; only [05:59:30, 06:00) of the beats lies in it
    assert r["uptime_hours"] == pytest.approx(30 / 3600)
    assert r["uptime_pct"] == pytest.approx(30 / 21_600)
    month = one(rows, period="month", period_start=date(2026, 11, 1), agent_id="a1")
    # scope [1 Nov 00:00, 23 Nov 06:00) = 22 days + 6 h = 1 922 400 s
    assert month["uptime_pct"] == pytest.approx(30 / 1_922_400)


def test_uptime_with_empty_scope_is_null_and_its_hours_zero() -> None:
    # a1 is deployed at 10:00, after as_of (08:00, the last heartbeat, sent by a2): its day
    # row exists (the day overlaps [date(deployed_at), as_of]) but its scope is empty.
    f = facts(
        [agent("a1", deployed_at=D(2026, 11, 23, 10), hourly_cost_usd=5.0), agent("a2")],
        heartbeats=[beat("a2", D(2026, 11, 23, 8))],
    )
    r = one(run_agent_kpis(f, NOV23, NOV23, D(2026, 11, 23, 8)), **day(NOV23, agent_id="a1"))
    assert r["uptime_pct"] is None
    assert r["uptime_hours"] == 0.0
    assert r["operating_cost_usd"] == 0.0


def test_uptime_interval_is_configurable() -> None:
    f = facts(
        [agent("a1")],
        heartbeats=[beat("a1", D(2026, 11, 23, 10, 0, 0)), beat("a1", D(2026, 11, 23, 10, 0, 45))],
    )
    rows = run_agent_kpis(f, NOV23, NOV23, MIDNIGHT_24, params=KpiParams(heartbeat_interval_s=30.0))
    # [10:00:00, 10:00:30) and [10:00:45, 10:01:15): 60 s (with 60 s beats it would be 105 s)
    assert one(rows, **day(NOV23, agent_id="a1"))["uptime_hours"] == pytest.approx(60 / 3600)


def test_department_uptime_is_sum_of_covered_over_sum_of_scopes() -> None:
    f = facts(
        [agent("a1"), agent("a2", deployed_at=D(2026, 11, 23, 12))],
        heartbeats=[beat("a1", D(2026, 11, 23, 10)), beat("a2", D(2026, 11, 23, 13))],
    )
    r = one(run_department_kpis(f, NOV23, NOV23, MIDNIGHT_24), **day(NOV23, department="finance"))
    # covered 60 + 60 s over scopes 86 400 + 43 200 s (not the mean of 60/86400 and 60/43200)
    assert r["uptime_pct"] == pytest.approx(120 / 129_600)


# ---------------------------------------------------------------------------------------------
# Tasks: counts, rates and percentiles


def test_tasks_succeeded_failed_and_partial() -> None:
    stamps = [D(2026, 11, 23, h) for h in (9, 10, 11, 12)]
    f = facts(
        [agent("a1")],
        tasks=[
            task("a1", t, pct) for t, pct in zip(stamps, [100.0, 0.0, 50.0, 100.0], strict=True)
        ],
    )
    r = one(run_agent_kpis(f, NOV23, NOV23, MIDNIGHT_24), **day(NOV23, agent_id="a1"))
    assert (r["tasks_total"], r["tasks_succeeded"], r["tasks_failed"]) == (4, 2, 1)
    # success_rate = mean(100, 0, 50, 100) / 100 = 62.5 / 100
    assert r["success_rate"] == pytest.approx(0.625)
    assert r["error_rate"] == pytest.approx(1 / 4)


@pytest.mark.parametrize(
    ("times", "avg", "p50", "p95", "maximum"),
    [
        # sorted 1 2 3 4 10: p50 at position 4*0.5 = 2 -> 3;
        # p95 at position 4*0.95 = 3.8 -> 4 + 0.8*(10-4) = 8.8
        ([10.0, 2.0, 4.0, 1.0, 3.0], 4.0, 3.0, 8.8, 10.0),
        # sorted 1 2 3 4: p50 at 1.5 -> 2.5; p95 at 2.85 -> 3 + 0.85*(4-3) = 3.85
        ([4.0, 1.0, 3.0, 2.0], 2.5, 2.5, 3.85, 4.0),
        ([7.0], 7.0, 7.0, 7.0, 7.0),
    ],
)
def test_execution_time_percentiles_are_linear(
    times: list[float], avg: float, p50: float, p95: float, maximum: float
) -> None:
    f = facts(
        [agent("a1")],
        tasks=[task("a1", D(2026, 11, 23, 9, i), execution_time_s=t) for i, t in enumerate(times)],
    )
    r = one(run_agent_kpis(f, NOV23, NOV23, MIDNIGHT_24), **day(NOV23, agent_id="a1"))
    assert r["exec_time_avg_s"] == pytest.approx(avg)
    assert r["exec_time_p50_s"] == pytest.approx(p50)
    assert r["exec_time_p95_s"] == pytest.approx(p95)
    assert r["exec_time_max_s"] == pytest.approx(maximum)


def test_task_belongs_to_the_period_of_its_completion() -> None:
    f = facts(
        [agent("a1")],
        tasks=[task("a1", D(2026, 11, 23, 23, 59, 59, 999_999)), task("a1", MIDNIGHT_24)],
    )
    rows = run_agent_kpis(f, NOV23, NOV24, D(2026, 11, 25))
    assert one(rows, **day(NOV23, agent_id="a1"))["tasks_total"] == 1
    assert one(rows, **day(NOV24, agent_id="a1"))["tasks_total"] == 1


def test_no_tasks_gives_zero_counts_and_null_rates() -> None:
    f = facts([agent("a1")], heartbeats=[beat("a1", D(2026, 11, 23, 10))])
    r = one(run_agent_kpis(f, NOV23, NOV23, MIDNIGHT_24), **day(NOV23, agent_id="a1"))
    assert (r["tasks_total"], r["tasks_succeeded"], r["tasks_failed"]) == (0, 0, 0)
    assert r["success_rate"] is None
    assert r["error_rate"] is None
    assert r["exec_time_avg_s"] is None
    assert r["exec_time_p95_s"] is None
    assert r["exec_time_max_s"] is None


# ---------------------------------------------------------------------------------------------
# Messages


def test_response_times_over_responded_received_messages() -> None:
    f = facts(
        [agent("a1"), agent("b1")],
        messages=[
            responded("a1", D(2026, 11, 23, 10), 1.0),
            responded("a1", D(2026, 11, 23, 11), 3.0),
            message("b1", "a1", D(2026, 11, 23, 12), D(2026, 11, 23, 12, 0, 1)),  # no response
        ],
    )
    r = one(run_agent_kpis(f, NOV23, NOV23, MIDNIGHT_24), **day(NOV23, agent_id="a1"))
    assert (r["messages_received"], r["messages_responded"]) == (3, 2)
    assert r["response_time_avg_s"] == pytest.approx(2.0)
    # sorted 1 3: p95 at position 0.95 -> 1 + 0.95*2 = 2.9
    assert r["response_time_p95_s"] == pytest.approx(2.9)


def test_message_counts_for_the_sender_by_sent_at_and_the_receiver_by_received_at() -> None:
    f = facts(
        [agent("a1"), agent("a2")],
        messages=[message("a1", "a2", D(2026, 11, 23, 23, 59, 50), D(2026, 11, 24, 0, 0, 10))],
    )
    rows = run_agent_kpis(f, NOV23, NOV24, D(2026, 11, 25))
    assert one(rows, **day(NOV23, agent_id="a1"))["messages_sent"] == 1
    assert one(rows, **day(NOV24, agent_id="a1"))["messages_sent"] == 0
    assert one(rows, **day(NOV23, agent_id="a2"))["messages_received"] == 0
    assert one(rows, **day(NOV24, agent_id="a2"))["messages_received"] == 1


def test_message_delivery_rate_is_delivered_over_delivered_and_failed() -> None:
    t = D(2026, 11, 23, 10)
    f = facts(
        [agent("a1"), agent("a2")],
        messages=[
            message("a1", "a2", t, t, status="delivered"),
            message("a1", "a2", t, t, status="delivered"),
            message("a1", "a2", t, status="failed"),
            message("a1", "a2", t, status="pending"),
        ],
    )
    r = one(run_agent_kpis(f, NOV23, NOV23, MIDNIGHT_24), **day(NOV23, agent_id="a1"))
    assert r["messages_sent"] == 4
    assert r["message_delivery_rate"] == pytest.approx(2 / 3)


def test_message_delivery_rate_with_only_pending_messages_is_null() -> None:
    t = D(2026, 11, 23, 10)
    f = facts(
        [agent("a1"), agent("a2")],
        messages=[
            message("a1", "a2", t, status="pending"),
            message("a1", "a2", t, status="pending"),
        ],
    )
    r = one(run_agent_kpis(f, NOV23, NOV23, MIDNIGHT_24), **day(NOV23, agent_id="a1"))
    assert r["messages_sent"] == 2
    assert r["message_delivery_rate"] is None


# ---------------------------------------------------------------------------------------------
# Resources, errors, workflows of an agent


def test_resource_samples_and_errors_logged_in_the_period() -> None:
    f = facts(
        [agent("a1")],
        resources=[
            resource("a1", D(2026, 11, 23, 10), 10.0, 100.0),
            resource("a1", D(2026, 11, 23, 11), 30.0, 300.0),
            resource("a1", D(2026, 11, 24, 1), 99.0, 999.0),  # another day
        ],
        errors=[
            error_event("a1", D(2026, 11, 23, 10)),
            error_event("a1", D(2026, 11, 23, 11)),
            error_event("a1", D(2026, 11, 24, 1)),
        ],
    )
    r = one(run_agent_kpis(f, NOV23, NOV23, MIDNIGHT_24), **day(NOV23, agent_id="a1"))
    assert (r["cpu_avg_pct"], r["cpu_max_pct"]) == (20.0, 30.0)
    assert (r["memory_avg_mb"], r["memory_max_mb"]) == (200.0, 300.0)
    assert r["errors_logged"] == 2


def test_workflows_participated_succeeded_and_collaboration_efficiency() -> None:
    t = D(2026, 11, 23, 10)
    f = facts(
        [agent("a1"), agent("a2"), agent("a3")],
        workflows=[
            workflow(["a2", "a1"], t, "completed", t + timedelta(minutes=5)),
            workflow(["a1", "a2"], t, "failed", t + timedelta(minutes=5)),
            workflow(["a1"], t, "running"),
            workflow(["a2", "a3"], t, "completed", t + timedelta(minutes=5)),
        ],
    )
    rows = run_agent_kpis(f, NOV23, NOV23, MIDNIGHT_24)
    r = one(rows, **day(NOV23, agent_id="a1"))
    assert (r["workflows_participated"], r["workflows_succeeded"]) == (3, 1)
    assert r["collaboration_efficiency"] == pytest.approx(1 / 2)
    a3 = one(rows, **day(NOV23, agent_id="a3"))
    assert (a3["workflows_participated"], a3["workflows_succeeded"]) == (1, 1)
    assert a3["collaboration_efficiency"] == 1.0


def test_collaboration_efficiency_with_only_running_workflows_is_null() -> None:
    f = facts(
        [agent("a1"), agent("a2")],
        workflows=[workflow(["a1", "a2"], D(2026, 11, 23, 10), "running")],
    )
    r = one(run_agent_kpis(f, NOV23, NOV23, MIDNIGHT_24), **day(NOV23, agent_id="a1"))
    assert (r["workflows_participated"], r["workflows_succeeded"]) == (1, 0)
    assert r["collaboration_efficiency"] is None


# ---------------------------------------------------------------------------------------------
# Cost and productivity ratios


def test_operating_cost_cost_per_task_and_tasks_per_uptime_hour() -> None:
    f = facts(
        [agent("a1", hourly_cost_usd=2.0)],
        tasks=[task("a1", D(2026, 11, 23, 10, 30)), task("a1", D(2026, 11, 23, 10, 31))],
        heartbeats=[beat("a1", D(2026, 11, 23, 10, m)) for m in (0, 1, 2)],
    )
    r = one(run_agent_kpis(f, NOV23, NOV23, MIDNIGHT_24), **day(NOV23, agent_id="a1"))
    # 180 s = 0.05 h; 2.0 USD/h * 0.05 h = 0.10 USD; 0.10 / 2 tasks; 2 tasks / 0.05 h
    assert r["uptime_hours"] == pytest.approx(0.05)
    assert r["operating_cost_usd"] == pytest.approx(0.10)
    assert r["cost_per_task_usd"] == pytest.approx(0.05)
    assert r["tasks_per_uptime_hour"] == pytest.approx(40.0)


def test_cost_per_task_without_tasks_is_null() -> None:
    f = facts(
        [agent("a1", hourly_cost_usd=2.0)],
        heartbeats=[beat("a1", D(2026, 11, 23, 10, m)) for m in (0, 1, 2)],
    )
    r = one(run_agent_kpis(f, NOV23, NOV23, MIDNIGHT_24), **day(NOV23, agent_id="a1"))
    assert r["operating_cost_usd"] == pytest.approx(0.10)
    assert r["cost_per_task_usd"] is None
    assert r["tasks_per_uptime_hour"] == 0.0  # 0 tasks over 0.05 h


def test_tasks_per_uptime_hour_without_uptime_is_null() -> None:
    f = facts(
        [agent("a1", hourly_cost_usd=2.0)],
        tasks=[task("a1", D(2026, 11, 23, 10)), task("a1", D(2026, 11, 23, 11))],
    )
    r = one(run_agent_kpis(f, NOV23, NOV23, MIDNIGHT_24), **day(NOV23, agent_id="a1"))
    assert r["uptime_hours"] == 0.0
    assert r["tasks_per_uptime_hour"] is None
    assert r["operating_cost_usd"] == 0.0
    assert r["cost_per_task_usd"] == 0.0  # 0 USD over 2 tasks


# ---------------------------------------------------------------------------------------------
# Health status


@pytest.mark.parametrize(
    ("success", "response", "expected"),
    [
        (None, None, "unknown"),
        # success rate alone, both sides of 0.80 and 0.95
        (0.7999, None, "red"),
        (0.80, None, "yellow"),
        (0.9499, None, "yellow"),
        (0.95, None, "green"),
        (1.0, None, "green"),
        # response time alone, both sides of 2 s and 5 s
        (None, 1.999, "green"),
        (None, 2.0, "yellow"),
        (None, 5.0, "yellow"),
        (None, 5.001, "red"),
        # both known: red if either is red, green only if both are green
        (0.99, 6.0, "red"),
        (0.5, 1.0, "red"),
        (0.99, 3.0, "yellow"),
        (0.90, 1.0, "yellow"),
        (0.95, 1.999, "green"),
    ],
)
def test_health_status_thresholds(
    success: float | None, response: float | None, expected: str
) -> None:
    values = pl.DataFrame(
        {"s": [success], "r": [response]}, schema={"s": pl.Float64, "r": pl.Float64}
    )
    status = values.select(health_status(pl.col("s"), pl.col("r"), PARAMS).alias("h"))["h"][0]
    assert status == expected


def test_health_thresholds_are_configuration() -> None:
    strict = KpiParams(
        success_green=0.99, success_red=0.9, response_green_s=1.0, response_red_s=3.0
    )
    values = pl.DataFrame({"s": [0.95, 0.89, None], "r": [None, None, 2.0]})
    statuses = values.select(health_status(pl.col("s"), pl.col("r"), strict).alias("h"))["h"]
    assert statuses.to_list() == ["yellow", "red", "yellow"]


@pytest.mark.parametrize(
    ("success_pcts", "expected"),
    [([80.0], "yellow"), ([79.0], "red"), ([95.0], "green"), ([100.0, 90.0], "green")],
)
def test_agent_health_status_from_its_tasks(success_pcts: list[float], expected: str) -> None:
    # mean(100, 90) = 95 -> 0.95 is green; 0.80 exactly is yellow, 0.79 red
    f = facts(
        [agent("a1")],
        tasks=[task("a1", D(2026, 11, 23, 9, i), pct) for i, pct in enumerate(success_pcts)],
    )
    r = one(run_agent_kpis(f, NOV23, NOV23, MIDNIGHT_24), **day(NOV23, agent_id="a1"))
    assert r["health_status"] == expected


def test_agent_without_tasks_or_responses_is_unknown() -> None:
    f = facts([agent("a1")], heartbeats=[beat("a1", D(2026, 11, 23, 10))])
    r = one(run_agent_kpis(f, NOV23, NOV23, MIDNIGHT_24), **day(NOV23, agent_id="a1"))
    assert r["health_status"] == "unknown"


def test_agent_health_status_on_response_time_alone() -> None:
    f = facts([agent("a1")], messages=[responded("a1", D(2026, 11, 23, 10), 5.5)])
    r = one(run_agent_kpis(f, NOV23, NOV23, MIDNIGHT_24), **day(NOV23, agent_id="a1"))
    assert r["success_rate"] is None
    assert r["health_status"] == "red"


@pytest.mark.parametrize(
    ("response_ms", "mean_s", "status", "alert"),
    [
        # Means of exactly 2 s and 5 s that averaging float seconds puts on either side of
        # the threshold (1.9999999999999998, 5.000000000000001).
        ([10, 4044, 1946], 2.0, "yellow", []),  # not green: r < 2 is not met
        ([658, 4429, 913], 2.0, "yellow", []),  # no warning: r > 2 is not met
        ([10983, 3111, 906], 5.0, "yellow", ["warning"]),
        ([1570, 4559, 8871], 5.0, "yellow", ["warning"]),  # not red, not critical
    ],
)
def test_a_mean_response_time_of_exactly_2_or_5_seconds_is_exact_at_every_grain(
    response_ms: list[int], mean_s: float, status: str, alert: list[str]
) -> None:
    received = [AS_OF - timedelta(hours=n + 1) for n in range(len(response_ms))]
    f = facts(
        [agent("a1")],
        messages=[
            responded("a1", at, ms / 1000) for at, ms in zip(received, response_ms, strict=True)
        ],
    )
    r = one(run_agent_kpis(f, NOV23, NOV23, AS_OF), **day(NOV23, agent_id="a1"))
    assert (r["response_time_avg_s"], r["health_status"]) == (mean_s, status)
    rows = run_agent_kpis(f, NOV23, NOV23, AS_OF).lazy()
    assert alerts(rows, PARAMS).collect()["level"].to_list() == alert
    department = one(
        run_department_kpis(f, NOV23, NOV23, AS_OF), **day(NOV23, department="finance")
    )
    assert department["response_time_avg_s"] == mean_s
    assert (
        one(run_system_kpis(f, NOV23, NOV23, AS_OF), period="day")["response_time_avg_s"] == mean_s
    )
    health = one(agent_health(f, AS_OF, PARAMS).collect(), agent_id="a1")
    assert (health["response_time_avg_24h_s"], health["health_status"]) == (mean_s, status)


# ---------------------------------------------------------------------------------------------
# Alerts


def _alert_rows(success: list[float | None], response: list[float | None]) -> pl.LazyFrame:
    n = len(success)
    return pl.LazyFrame(
        {
            "period": ["day"] * n,
            "period_start": [NOV23] * n,
            "agent_id": [f"a{i}" for i in range(n)],
            "department": ["finance"] * n,
            "success_rate": success,
            "response_time_avg_s": response,
        },
        schema_overrides={"success_rate": pl.Float64, "response_time_avg_s": pl.Float64},
    )


def test_alert_success_rate_at_the_most_severe_level_only() -> None:
    rows = _alert_rows([0.5, 0.79, 0.80, 0.94, 0.95, None], [None] * 6)
    result = alerts(rows, PARAMS).collect()
    assert result.select("agent_id", "metric", "level", "value", "threshold").rows() == [
        ("a0", "success_rate", "critical", 0.5, 0.80),
        ("a1", "success_rate", "critical", 0.79, 0.80),
        ("a2", "success_rate", "warning", 0.80, 0.95),
        ("a3", "success_rate", "warning", 0.94, 0.95),
    ]


def test_alert_response_time_at_the_most_severe_level_only() -> None:
    rows = _alert_rows([None] * 5, [6.0, 5.0, 2.5, 2.0, None])
    result = alerts(rows, PARAMS).collect()
    assert result.select("agent_id", "metric", "level", "value", "threshold").rows() == [
        ("a0", "response_time_avg_s", "critical", 6.0, 5.0),
        ("a1", "response_time_avg_s", "warning", 5.0, 2.0),
        ("a2", "response_time_avg_s", "warning", 2.5, 2.0),
    ]


def test_alerts_one_row_per_breached_metric_and_only_for_day_rows() -> None:
    rows = pl.concat(
        [
            _alert_rows([0.5], [6.0]),
            _alert_rows([0.5], [6.0]).with_columns(pl.lit("week").alias("period")),
        ]
    )
    result = alerts(rows, PARAMS).collect()
    assert result.select("period_start", "agent_id", "department", "metric", "level").rows() == [
        (NOV23, "a0", "finance", "response_time_avg_s", "critical"),
        (NOV23, "a0", "finance", "success_rate", "critical"),
    ]


# ---------------------------------------------------------------------------------------------
# Ranks


def test_productivity_ranks_with_ties_and_null_success_rate_last() -> None:
    t = D(2026, 11, 23, 10)

    def tasks_of(agent_id: str, pcts: list[float]) -> list[dict[str, object]]:
        return [task(agent_id, t + timedelta(minutes=i), p) for i, p in enumerate(pcts)]

    f = facts(
        [
            agent("d", "finance"),
            agent("c", "finance"),
            agent("a", "finance"),
            agent("b", "marketing"),
            agent("f", "marketing"),
            agent("e", "marketing"),
            agent("g", "marketing"),
        ],
        tasks=[
            *tasks_of("d", [100.0] * 5 + [0.0] * 5),  # 5 succeeded, rate 0.50
            *tasks_of("c", [100.0, 100.0, 100.0, 80.0]),  # 3 succeeded, rate 0.95
            *tasks_of("a", [100.0, 100.0, 100.0, 60.0]),  # 3 succeeded, rate 0.90
            *tasks_of("b", [100.0, 100.0, 100.0, 60.0]),  # 3 succeeded, rate 0.90 (ties a)
            *tasks_of("f", [0.0]),  # 0 succeeded, rate 0.0
            # e and g: no task, rate NULL
        ],
    )
    rows = run_agent_kpis(f, NOV23, NOV23, MIDNIGHT_24)
    ranks = {
        r["agent_id"]: (r["rank_overall"], r["rank_in_department"])
        for r in rows.iter_rows(named=True)
    }
    assert ranks == {
        "d": (1, 1),
        "c": (2, 2),
        "a": (3, 3),
        "b": (3, 1),
        "f": (5, 2),
        "e": (6, 3),
        "g": (6, 3),
    }


def test_department_rank_success_with_ties_and_nulls_last() -> None:
    t = D(2026, 11, 23, 10)
    f = facts(
        [
            agent("s1", "sales"),
            agent("f1", "finance"),
            agent("m1", "marketing"),
            agent("o1", "ops"),
        ],
        tasks=[
            task("s1", t, 90.0),
            task("f1", t, 70.0),
            task("m1", t, 100.0),
            task("m1", t, 40.0),  # mean 70 -> 0.70, ties finance
        ],
    )
    rows = run_department_kpis(f, NOV23, NOV23, MIDNIGHT_24)
    ranks = {r["department"]: r["rank_success"] for r in rows.iter_rows(named=True)}
    assert ranks == {"sales": 1, "finance": 2, "marketing": 2, "ops": 4}


# ---------------------------------------------------------------------------------------------
# Which rows exist


def test_idle_agent_gets_a_row_for_every_period_from_deployment_to_as_of() -> None:
    as_of_ts = D(2026, 11, 23, 12)
    f = facts(
        [agent("idle", deployed_at=D(2026, 11, 20, 10)), agent("b", deployed_at=D(2026, 11, 23))],
        heartbeats=[beat("b", as_of_ts)],
    )
    # periods of all of November are requested: none after as_of may appear
    rows = run_agent_kpis(f, date(2026, 11, 1), date(2026, 11, 30), as_of_ts, kinds=PERIODS)
    idle = rows.filter(agent_id="idle").sort("period", "period_start")
    assert idle.select("period", "period_start").rows() == [
        ("day", date(2026, 11, 20)),
        ("day", date(2026, 11, 21)),
        ("day", date(2026, 11, 22)),
        ("day", date(2026, 11, 23)),
        ("month", date(2026, 11, 1)),
        ("week", date(2026, 11, 16)),  # Mon 16 .. Sun 22 Nov holds 20-22 Nov
        ("week", date(2026, 11, 23)),
    ]
    assert idle["tasks_total"].to_list() == [0] * 7
    assert idle["messages_sent"].to_list() == [0] * 7
    assert idle["errors_logged"].to_list() == [0] * 7
    assert idle["workflows_participated"].to_list() == [0] * 7
    assert idle["health_status"].to_list() == ["unknown"] * 7
    assert idle["department"].to_list() == ["finance"] * 7


def test_active_agent_gets_rows_with_zero_counts_for_its_idle_days() -> None:
    f = facts(
        [agent("a1")],
        tasks=[task("a1", D(2026, 11, 20, 10)), task("a1", D(2026, 11, 23, 10))],
        heartbeats=[beat("a1", D(2026, 11, 23, 12))],
    )
    rows = run_agent_kpis(f, date(2026, 11, 20), NOV23, D(2026, 11, 23, 12))
    tasks_by_day = dict(rows.filter(agent_id="a1").select("period_start", "tasks_total").rows())
    assert tasks_by_day == {
        date(2026, 11, 20): 1,
        date(2026, 11, 21): 0,
        date(2026, 11, 22): 0,
        date(2026, 11, 23): 1,
    }
    idle = one(rows, **day(date(2026, 11, 21), agent_id="a1"))
    assert idle["uptime_pct"] == 0.0  # a full day of scope, nothing covered
    assert idle["success_rate"] is None


def test_agent_deployed_after_as_of_has_no_row() -> None:
    as_of_ts = D(2026, 11, 23, 12)
    f = facts(
        [agent("a1"), agent("late", deployed_at=D(2026, 11, 24, 9))],
        heartbeats=[beat("a1", as_of_ts)],
    )
    rows = run_agent_kpis(f, NOV23, date(2026, 11, 30), as_of_ts, kinds=PERIODS)
    # [date(deployed_at), as_of] = [24 Nov, 23 Nov 12:00] is empty: no period overlaps it
    assert rows.filter(agent_id="late").select("period", "period_start").rows() == []


def test_activity_before_deployment_creates_a_row() -> None:
    as_of_ts = D(2026, 11, 23, 12)
    f = facts(
        [agent("a1", deployed_at=D(2026, 11, 22, 8))],
        tasks=[task("a1", D(2026, 11, 20, 15))],
        heartbeats=[beat("a1", as_of_ts)],
    )
    rows = run_agent_kpis(f, date(2026, 11, 19), NOV23, as_of_ts)
    assert sorted(rows.filter(agent_id="a1")["period_start"].to_list()) == [
        date(2026, 11, 20),
        date(2026, 11, 22),
        date(2026, 11, 23),
    ]
    early = one(rows, **day(date(2026, 11, 20), agent_id="a1"))
    assert early["tasks_total"] == 1
    # the day lies wholly before the deployment: the scope is empty
    assert early["uptime_pct"] is None
    assert early["uptime_hours"] == 0.0


def test_department_and_system_rows_for_every_period_from_first_deployment_to_as_of() -> None:
    as_of_ts = D(2026, 11, 23, 12)
    f = facts(
        [
            agent("f1", "finance", deployed_at=D(2026, 11, 22, 9)),
            agent("f2", "finance", deployed_at=D(2026, 11, 21, 9)),
            agent("m1", "marketing", deployed_at=D(2026, 11, 23, 1)),
        ],
        heartbeats=[beat("f1", as_of_ts)],
    )
    departments = run_department_kpis(f, date(2026, 11, 19), date(2026, 11, 25), as_of_ts)
    assert sorted(departments.select("department", "period_start").rows()) == [
        ("finance", date(2026, 11, 21)),
        ("finance", date(2026, 11, 22)),
        ("finance", date(2026, 11, 23)),
        ("marketing", date(2026, 11, 23)),
    ]
    system = run_system_kpis(f, date(2026, 11, 19), date(2026, 11, 25), as_of_ts)
    assert system["period_start"].to_list() == [
        date(2026, 11, 21),
        date(2026, 11, 22),
        date(2026, 11, 23),
    ]


def test_is_complete_when_period_end_is_at_or_before_as_of() -> None:
    f = facts([agent("a1")], heartbeats=[beat("a1", MIDNIGHT_24)])
    rows = run_agent_kpis(f, NOV23, NOV24, MIDNIGHT_24, kinds=PERIODS)
    assert one(rows, **day(NOV23, agent_id="a1"))["is_complete"] is True  # ends at as_of
    assert one(rows, **day(NOV24, agent_id="a1"))["is_complete"] is False
    assert one(rows, period="week", period_start=NOV23, agent_id="a1")["is_complete"] is False
    later = run_agent_kpis(f, NOV23, NOV23, D(2026, 11, 23, 23, 59, 59))
    assert one(later, **day(NOV23, agent_id="a1"))["is_complete"] is False


def test_iso_weeks_and_months_in_agent_rows() -> None:
    f = facts(
        [agent("a1")],
        tasks=[
            task("a1", D(2026, 11, 29, 12)),  # Sunday: week of Mon 23 Nov
            task("a1", D(2026, 11, 30, 12)),  # Monday: week of Mon 30 Nov
            task("a1", D(2026, 12, 31, 12)),  # Thursday: week of Mon 28 Dec
            task("a1", D(2027, 1, 1, 12)),  # Friday: week of Mon 28 Dec, month January
        ],
    )
    rows = run_agent_kpis(f, date(2026, 11, 29), date(2027, 1, 1), D(2027, 1, 2), ("week", "month"))
    week = {
        r["period_start"]: r["tasks_total"]
        for r in rows.filter(period="week").iter_rows(named=True)
    }
    assert week[date(2026, 11, 23)] == 1
    assert week[date(2026, 11, 30)] == 1
    assert week[date(2026, 12, 28)] == 2
    assert one(rows, period="week", period_start=date(2026, 12, 28))["period_end"] == date(
        2027, 1, 4
    )
    month = {
        r["period_start"]: r["tasks_total"]
        for r in rows.filter(period="month").iter_rows(named=True)
    }
    assert month == {date(2026, 11, 1): 2, date(2026, 12, 1): 1, date(2027, 1, 1): 1}


def test_agent_attributes_come_from_the_registry_not_from_the_task_row() -> None:
    # The agent moved from marketing to finance: its task row still says marketing.
    valid_task = pl.LazyFrame(
        {
            "task_id": [1],
            "agent_id": ["a1"],
            "department": ["marketing"],
            "task_type": ["forecast"],
            "execution_time_s": [1.0],
            "success_pct": [100.0],
            "completed_at": [D(2026, 11, 23, 10)],
        }
    )
    base = facts([agent("a1", "finance"), agent("m1", "marketing")])
    tasks = core.task_facts(valid_task, base.agents)
    f = Facts(
        base.agents,
        tasks,
        base.messages,
        base.workflows,
        base.heartbeats,
        base.resources,
        base.errors,
    )
    r = one(run_agent_kpis(f, NOV23, NOV23, MIDNIGHT_24), **day(NOV23, agent_id="a1"))
    assert (r["department"], r["agent_class"]) == ("finance", "FinanceAgent")
    departments = run_department_kpis(f, NOV23, NOV23, MIDNIGHT_24)
    assert one(departments, **day(NOV23, department="finance"))["tasks_total"] == 1
    assert one(departments, **day(NOV23, department="marketing"))["tasks_total"] == 0


# ---------------------------------------------------------------------------------------------
# department_kpis


def test_department_figures_are_computed_over_all_its_agents_facts() -> None:
    f = facts(
        [
            agent("a1", "finance", hourly_cost_usd=3.0),
            agent("a2", "finance", deployed_at=D(2026, 11, 23, 12), hourly_cost_usd=6.0),
            agent("a3", "marketing"),
        ],
        tasks=[
            task("a1", D(2026, 11, 23, 14), 100.0, 1.0),
            task("a1", D(2026, 11, 23, 15), 0.0, 2.0),
            task("a2", D(2026, 11, 23, 14), 100.0, 3.0),
            task("a2", D(2026, 11, 23, 15), 50.0, 4.0),
            task("a2", D(2026, 11, 23, 16), 100.0, 10.0),
            task("a3", D(2026, 11, 23, 14), 0.0, 5.0),
        ],
        messages=[
            responded("a1", D(2026, 11, 23, 14), 1.0),
            responded("a1", D(2026, 11, 23, 15), 3.0),
            responded("a2", D(2026, 11, 23, 14), 1.5),
        ],
        heartbeats=[
            beat("a1", D(2026, 11, 23, 10, 0)),
            beat("a1", D(2026, 11, 23, 10, 1)),
            beat("a2", D(2026, 11, 23, 13, 0)),
        ],
    )
    r = one(run_department_kpis(f, NOV23, NOV23, MIDNIGHT_24), **day(NOV23, department="finance"))
    assert (r["tasks_total"], r["tasks_succeeded"], r["tasks_failed"]) == (5, 3, 1)
    # mean(100, 0, 100, 50, 100) / 100 = 0.70
    assert r["success_rate"] == pytest.approx(0.70)
    assert r["error_rate"] == pytest.approx(1 / 5)
    # over 1 2 3 4 10 (not the mean of the agents' p50s, 1.5 and 4)
    assert r["exec_time_avg_s"] == pytest.approx(4.0)
    assert r["exec_time_p50_s"] == pytest.approx(3.0)
    assert r["exec_time_p95_s"] == pytest.approx(8.8)
    # (1 + 3 + 1.5) / 3, not the mean of the agents' means (2 and 1.5)
    assert r["response_time_avg_s"] == pytest.approx(5.5 / 3)
    # a1: 3 USD/h * 120 s = 0.10; a2: 6 USD/h * 60 s = 0.10
    assert r["operating_cost_usd"] == pytest.approx(0.20)
    # covered 120 + 60 s over scopes 86 400 + 43 200 s
    assert r["uptime_pct"] == pytest.approx(180 / 129_600)
    assert (r["agents_total"], r["agents_active"]) == (2, 2)
    assert r["health_status"] == "red"  # success rate 0.70 < 0.80


def test_department_health_counts_are_of_its_agent_rows() -> None:
    t = D(2026, 11, 23, 10)
    f = facts(
        [agent(a) for a in ("g", "y", "r1", "r2", "u")] + [agent("other", "marketing")],
        tasks=[
            task("g", t, 100.0),
            task("y", t, 90.0),
            task("r1", t, 0.0),
            task("r2", t, 50.0),
            task("other", t, 100.0),
        ],
    )
    r = one(run_department_kpis(f, NOV23, NOV23, MIDNIGHT_24), **day(NOV23, department="finance"))
    # u has no indicator (unknown) and is counted in none of the three
    assert (r["agents_green"], r["agents_yellow"], r["agents_red"]) == (1, 1, 2)


def test_department_health_at_the_green_boundaries_is_green() -> None:
    t = D(2026, 11, 23, 10)
    f = facts(
        [agent("a1"), agent("a2")],
        tasks=[task("a1", t, 100.0), task("a2", t, 90.0)],  # mean 95 -> 0.95
        messages=[responded("a1", t, 1.0), responded("a2", t, 2.998)],  # mean 1.999 s
    )
    r = one(run_department_kpis(f, NOV23, NOV23, MIDNIGHT_24), **day(NOV23, department="finance"))
    assert r["success_rate"] == pytest.approx(0.95)
    assert r["health_status"] == "green"


def test_department_agents_total_counts_agents_deployed_before_period_end() -> None:
    f = facts(
        [
            agent("early"),
            agent("at_end", deployed_at=MIDNIGHT_24),  # deployed exactly at day 23's end
            agent("just_before", deployed_at=D(2026, 11, 23, 23, 59, 59, 999_999)),
            agent("failed", deployed_at=D(2026, 11, 23, 9), deployment_status="failed"),
        ],
        heartbeats=[beat("early", D(2026, 11, 24, 12))],
    )
    rows = run_department_kpis(f, NOV23, NOV24, D(2026, 11, 24, 12))
    assert one(rows, **day(NOV23, department="finance"))["agents_total"] == 3
    assert one(rows, **day(NOV24, department="finance"))["agents_total"] == 4


def test_department_agents_active_have_a_task_or_heartbeat_in_the_period() -> None:
    t = D(2026, 11, 23, 10)
    f = facts(
        [agent(a) for a in ("tasker", "beater", "talker", "sampler", "idle")],
        tasks=[task("tasker", t)],
        heartbeats=[beat("beater", t)],
        messages=[message("talker", "idle", t, t)],
        resources=[resource("sampler", t, 1.0, 1.0)],
    )
    r = one(run_department_kpis(f, NOV23, NOV23, MIDNIGHT_24), **day(NOV23, department="finance"))
    assert (r["agents_total"], r["agents_active"]) == (5, 2)
    s = one(run_system_kpis(f, NOV23, NOV23, MIDNIGHT_24), **day(NOV23))
    assert s["agents_active"] == 2


def test_department_business_figures_are_sums_and_ratios_of_sums() -> None:
    nov25 = date(2026, 11, 25)
    business = frame(
        "fct_business_metrics",
        [
            figure(NOV23, "revenue_usd", 100.0),
            figure(NOV23, "lead_pipeline_usd", 500.0),
            figure(NOV23, "cost_savings_usd", 30.0),
            figure(NOV23, "leads_generated", 10.0),
            figure(NOV23, "conversions", 2.0),
            figure(NOV23, "predictions_total", 2.0),
            figure(NOV23, "predictions_correct", 1.0),
            figure(NOV23, "insights_generated", 3.0),
            figure(NOV23, "content_published", 1.0),
            figure(NOV23, "seo_score", 60.0),
            figure(NOV23, "engagement_rate", 0.5),
            figure(NOV24, "revenue_usd", 50.0),
            figure(NOV24, "leads_generated", 30.0),
            figure(NOV24, "conversions", 3.0),
            figure(NOV24, "predictions_total", 10.0),
            figure(NOV24, "predictions_correct", 9.0),
            figure(NOV24, "seo_score", 80.0),
            figure(NOV24, "engagement_rate", 0.25),
            figure(NOV23, "revenue_usd", 1000.0, department="marketing"),
        ],
    )
    f = facts([agent("a1", "finance"), agent("m1", "marketing")])
    as_of_ts = D(2026, 11, 25, 12)
    rows = run_department_kpis(f, NOV23, nov25, as_of_ts, ("day", "week"), business)
    week = one(rows, period="week", period_start=NOV23, department="finance")
    assert week["revenue_usd"] == 150.0
    assert week["lead_pipeline_usd"] == 500.0
    assert week["cost_savings_usd"] == 30.0
    assert (week["leads_generated"], week["conversions"]) == (40.0, 5.0)
    assert (week["insights_generated"], week["content_published"]) == (3.0, 1.0)
    # 5 / 40 = 0.125 (the mean of the daily ratios would be 0.15)
    assert week["conversion_rate"] == pytest.approx(0.125)
    # (1 + 9) / (2 + 10) (the mean of the daily ratios would be 0.70)
    assert week["prediction_accuracy"] == pytest.approx(10 / 12)
    assert week["seo_score_avg"] == pytest.approx(70.0)
    assert week["engagement_rate_avg"] == pytest.approx(0.375)
    # a day without figures: sums 0, ratios and means NULL
    empty_day = one(rows, **day(nov25, department="finance"))
    assert empty_day["revenue_usd"] == 0.0
    assert empty_day["leads_generated"] == 0.0
    assert empty_day["conversion_rate"] is None
    assert empty_day["prediction_accuracy"] is None
    assert empty_day["seo_score_avg"] is None
    assert one(rows, **day(NOV23, department="marketing"))["revenue_usd"] == 1000.0


# ---------------------------------------------------------------------------------------------
# Restated business figures


def test_restatement_latest_recorded_at_wins_over_a_higher_id() -> None:
    versions = frame(
        "fct_business_metrics",
        [
            figure(NOV23, "revenue_usd", 100.0, recorded_at=D(2026, 11, 24, 10), metric_row_id=1),
            figure(NOV23, "revenue_usd", 200.0, recorded_at=D(2026, 11, 24, 12), metric_row_id=2),
            figure(NOV23, "revenue_usd", 150.0, recorded_at=D(2026, 11, 24, 11), metric_row_id=3),
        ],
    )
    resolved = core.resolve_restatements(versions).collect()
    assert resolved.select("value", "metric_row_id").rows() == [(200.0, 2)]


def test_restatement_tie_on_recorded_at_goes_to_highest_id() -> None:
    at = D(2026, 11, 24, 10)
    versions = frame(
        "fct_business_metrics",
        [
            figure(NOV23, "cost_savings_usd", 9.0, recorded_at=at, metric_row_id=8),
            figure(NOV23, "cost_savings_usd", 5.0, recorded_at=at, metric_row_id=7),
        ],
    )
    resolved = core.resolve_restatements(versions).collect()
    assert resolved.select("value", "metric_row_id").rows() == [(9.0, 8)]


def test_restatement_is_per_date_department_and_metric() -> None:
    versions = frame(
        "fct_business_metrics",
        [
            figure(NOV23, "revenue_usd", 1.0, "finance"),
            figure(NOV23, "revenue_usd", 2.0, "marketing"),
            figure(NOV24, "revenue_usd", 3.0, "finance"),
            figure(NOV23, "conversions", 4.0, "finance"),
        ],
    )
    resolved = core.resolve_restatements(versions).collect()
    assert sorted(resolved["value"].to_list()) == [1.0, 2.0, 3.0, 4.0]


def test_department_revenue_counts_a_restated_figure_once() -> None:
    versions = frame(
        "fct_business_metrics",
        [
            figure(NOV23, "revenue_usd", 100.0, recorded_at=D(2026, 11, 23, 20), metric_row_id=1),
            figure(NOV23, "revenue_usd", 120.0, recorded_at=D(2026, 11, 24, 9), metric_row_id=2),
        ],
    )
    f = facts([agent("a1")])
    rows = run_department_kpis(
        f, NOV23, NOV23, D(2026, 11, 24, 10), business=core.resolve_restatements(versions)
    )
    assert one(rows, **day(NOV23, department="finance"))["revenue_usd"] == 120.0


# ---------------------------------------------------------------------------------------------
# system_kpis


def test_system_deployment_success_rate_counts_failed_deployments() -> None:
    f = facts(
        [
            agent("a1", deployment_status="deployed"),
            agent("a2", deployment_status="retired"),
            agent("a3", deployment_status="failed"),
            agent("a4", deployed_at=D(2026, 11, 24, 9)),  # after day 23's end
        ],
        heartbeats=[beat("a1", D(2026, 11, 24, 10))],
    )
    rows = run_system_kpis(f, NOV23, NOV24, D(2026, 11, 24, 10))
    d23 = one(rows, **day(NOV23))
    assert (d23["agents_registered"], d23["agents_deployed"]) == (3, 2)
    assert d23["deployment_success_rate"] == pytest.approx(2 / 3)
    d24 = one(rows, **day(NOV24))
    assert (d24["agents_registered"], d24["agents_deployed"]) == (4, 3)
    assert d24["deployment_success_rate"] == pytest.approx(3 / 4)


def test_system_multi_agent_workflows_succeeded_is_cumulative() -> None:
    f = facts(
        [agent("a1", deployed_at=D(2026, 10, 1)), agent("a2", deployed_at=D(2026, 10, 1))],
        workflows=[
            workflow(["a1", "a2"], D(2026, 10, 15), "completed", D(2026, 10, 15, 1)),  # counts
            workflow(["a1", "a2"], D(2026, 11, 20, 10), "completed", D(2026, 11, 20, 11)),  # counts
            workflow(["a1"], D(2026, 11, 21, 10), "completed", D(2026, 11, 21, 11)),  # one agent
            workflow(["a1", "a2"], D(2026, 11, 22, 10), "failed", D(2026, 11, 22, 11)),
            workflow(["a1", "a2"], D(2026, 11, 22, 12), "running"),
            workflow(["a1", "a2"], D(2026, 11, 23, 10), "completed", D(2026, 11, 23, 11)),  # counts
        ],
    )
    p = periods_overlapping(date(2026, 10, 1), date(2026, 11, 23), ("day", "month"))
    p = p.filter((pl.col("period") == "month") | (pl.col("period_start") >= date(2026, 11, 20)))
    rows_frame = agent_kpis(f, p.lazy(), MIDNIGHT_24, PARAMS).collect().lazy()
    rows = system_kpis(f, rows_frame, p.lazy(), PARAMS).collect()
    succeeded = {
        (r["period"], r["period_start"]): r["multi_agent_workflows_succeeded"]
        for r in rows.iter_rows(named=True)
    }
    assert succeeded == {
        ("month", date(2026, 10, 1)): 1,
        ("month", date(2026, 11, 1)): 3,
        ("day", date(2026, 11, 20)): 2,
        ("day", date(2026, 11, 21)): 2,
        ("day", date(2026, 11, 22)): 2,
        ("day", date(2026, 11, 23)): 3,
    }


def test_system_workflow_counts_by_status_of_workflows_started_in_the_period() -> None:
    t = D(2026, 11, 23, 10)
    done = t + timedelta(minutes=30)
    f = facts(
        [agent("a1"), agent("a2")],
        workflows=[
            workflow(["a1", "a2"], t, "completed", done),
            workflow(["a1"], t, "completed", done),
            workflow(["a1", "a2"], t, "failed", done),
            workflow(["a2"], t, "running"),
            workflow(["a2"], D(2026, 11, 22, 23, 50), "completed", D(2026, 11, 23, 0, 10)),
        ],
    )
    r = one(run_system_kpis(f, NOV23, NOV23, MIDNIGHT_24), **day(NOV23))
    assert (r["workflows_started"], r["workflows_completed"]) == (4, 2)
    assert (r["workflows_failed"], r["workflows_running"]) == (1, 1)
    assert r["workflow_completion_rate"] == pytest.approx(2 / 3)


def test_system_workflow_counts_use_each_workflows_latest_row() -> None:
    t = D(2026, 11, 23, 10)
    first = workflow(["a1", "a2"], t, "running")
    updated = {
        **first,
        "status": "completed",
        "completed_at": t + timedelta(minutes=5),
        "updated_at": t + timedelta(minutes=5),
    }
    # the later version comes first in the frame: the latest updated_at wins, not the order
    versions = frame("fct_workflow_runs", [updated, first])
    base = facts([agent("a1"), agent("a2")])
    latest = core.latest_versions(versions, "workflow_id")
    f = Facts(
        base.agents, base.tasks, base.messages, latest, base.heartbeats, base.resources, base.errors
    )
    r = one(run_system_kpis(f, NOV23, NOV23, MIDNIGHT_24), **day(NOV23))
    assert (r["workflows_started"], r["workflows_completed"], r["workflows_running"]) == (1, 1, 0)


def test_system_cross_department_completion_rate() -> None:
    t = D(2026, 11, 23, 10)
    done = t + timedelta(minutes=30)
    f = facts(
        [agent("a1", "finance"), agent("a2", "finance"), agent("a3", "marketing")],
        workflows=[
            workflow(["a1", "a3"], t, "completed", done),  # cross
            workflow(["a3", "a1"], t, "failed", done),  # cross
            workflow(["a2", "a3"], t, "running"),  # cross, not finished
            workflow(["a1", "a2"], t, "completed", done),  # finance only
            workflow(["a1", "a2"], t, "completed", done),  # finance only
            # same-department only on the next day
            workflow(["a1", "a2"], D(2026, 11, 24, 10), "completed", D(2026, 11, 24, 11)),
        ],
    )
    rows = run_system_kpis(f, NOV23, NOV24, D(2026, 11, 25))
    d23 = one(rows, **day(NOV23))
    assert d23["cross_department_completion_rate"] == pytest.approx(1 / 2)
    assert d23["workflow_completion_rate"] == pytest.approx(3 / 4)
    assert one(rows, **day(NOV24))["cross_department_completion_rate"] is None


def test_system_error_recovery_rate() -> None:
    t = D(2026, 11, 23, 10)
    done = t + timedelta(minutes=30)
    f = facts(
        [agent("a1")],
        workflows=[
            workflow(["a1"], t, "completed", done, errors=4, errors_recovered=1),
            workflow(["a1"], t, "completed", done, errors=0, errors_recovered=0),
            workflow(["a1"], t, "failed", done, errors=1, errors_recovered=1),
            workflow(["a1"], D(2026, 11, 24, 10), "completed", D(2026, 11, 24, 11)),
        ],
    )
    rows = run_system_kpis(f, NOV23, NOV24, D(2026, 11, 25))
    # (1 + 0 + 1) / (4 + 0 + 1)
    assert one(rows, **day(NOV23))["error_recovery_rate"] == pytest.approx(2 / 5)
    # no errors at all: 0 / 0
    assert one(rows, **day(NOV24))["error_recovery_rate"] is None


def test_system_messages_and_communication_success_rate() -> None:
    t = D(2026, 11, 23, 10)
    f = facts(
        [agent("a1"), agent("a2")],
        messages=[
            message("a1", "a2", t, t, status="delivered"),
            message("a2", "a1", t, t, status="delivered"),
            message("a1", "a2", t, status="failed"),
            message("a1", "a2", t, status="pending"),
            message("a1", "a2", D(2026, 11, 22, 23), D(2026, 11, 23, 1)),  # sent the day before
        ],
    )
    r = one(run_system_kpis(f, NOV23, NOV23, MIDNIGHT_24), **day(NOV23))
    assert r["messages_total"] == 4
    assert r["communication_success_rate"] == pytest.approx(2 / 3)


def test_system_average_queues_over_heartbeats_in_the_period() -> None:
    f = facts(
        [agent("a1"), agent("a2")],
        heartbeats=[
            beat("a1", D(2026, 11, 23, 10), task_queue=1, message_queue=0),
            beat("a1", D(2026, 11, 23, 11), task_queue=2, message_queue=0),
            beat("a2", D(2026, 11, 23, 10), task_queue=6, message_queue=3),
            beat("a2", D(2026, 11, 24, 10), task_queue=100, message_queue=100),
        ],
    )
    r = one(run_system_kpis(f, NOV23, NOV24, D(2026, 11, 24, 10)), **day(NOV23))
    assert r["avg_task_queue"] == pytest.approx(3.0)
    assert r["avg_message_queue"] == pytest.approx(1.0)


def test_system_task_figures_healthy_agents_and_cost_over_all_facts() -> None:
    t = D(2026, 11, 23, 10)
    f = facts(
        [
            agent("a1", "finance", hourly_cost_usd=3.0),
            agent("a2", "marketing", hourly_cost_usd=6.0),
        ],
        tasks=[
            task("a1", t, 100.0, 1.0),
            task("a1", t, 100.0, 2.0),
            task("a2", t, 0.0, 3.0),
            task("a2", t, 40.0, 4.0),
        ],
        heartbeats=[beat("a1", t), beat("a2", t)],
        messages=[responded("a1", t, 1.0), responded("a2", t, 4.0)],
    )
    r = one(run_system_kpis(f, NOV23, NOV23, MIDNIGHT_24), **day(NOV23))
    assert r["tasks_total"] == 4
    # mean(100, 100, 0, 40) / 100 = 0.60
    assert r["success_rate"] == pytest.approx(0.60)
    assert r["error_rate"] == pytest.approx(1 / 4)
    # sorted 1 2 3 4: p95 at 2.85 -> 3.85
    assert r["exec_time_p95_s"] == pytest.approx(3.85)
    assert r["response_time_avg_s"] == pytest.approx(2.5)
    assert r["agents_healthy"] == 1  # a1 (1.0, 1 s) green; a2 red
    # 3 USD/h * 60 s + 6 USD/h * 60 s
    assert r["operating_cost_usd"] == pytest.approx(0.15)


# ---------------------------------------------------------------------------------------------
# workflow_kpis


def test_workflow_kpis_durations_over_finished_runs_only() -> None:
    f = facts(
        [agent("a1", "finance"), agent("a2", "finance"), agent("a3", "marketing")],
        workflows=[
            workflow(
                ["a1", "a2"],
                D(2026, 11, 23, 10),
                "completed",
                D(2026, 11, 23, 10, 10),
                errors=2,
                errors_recovered=1,
            ),  # 600 s
            workflow(
                ["a1", "a3"], D(2026, 11, 23, 11), "failed", D(2026, 11, 23, 11, 20), errors=3
            ),  # 1200 s
            workflow(["a1"], D(2026, 11, 23, 12), "running"),
        ],
    )
    rows = workflow_kpis(f, periods(NOV23, NOV23)).collect()
    r = one(rows, **day(NOV23, workflow_name="quarterly_close"))
    assert (r["runs"], r["completed"], r["failed"], r["running"]) == (3, 1, 1, 1)
    assert r["completion_rate"] == pytest.approx(1 / 2)
    assert r["duration_avg_s"] == pytest.approx(900.0)
    # sorted 600 1200: p95 at 0.95 -> 600 + 0.95*600 = 1170
    assert r["duration_p95_s"] == pytest.approx(1170.0)
    assert (r["errors"], r["errors_recovered"]) == (5, 1)
    assert r["recovery_rate"] == pytest.approx(1 / 5)
    assert r["departments_involved"] == 2
    assert r["is_cross_department"] is True


def test_workflow_kpis_with_only_running_runs_have_null_durations_and_rates() -> None:
    f = facts(
        [agent("a1"), agent("a2")],
        workflows=[workflow(["a1", "a2"], D(2026, 11, 23, 12), "running", name="lead_nurture")],
    )
    r = one(workflow_kpis(f, periods(NOV23, NOV23)).collect(), **day(NOV23))
    assert (r["runs"], r["running"]) == (1, 1)
    assert r["duration_avg_s"] is None
    assert r["duration_p95_s"] is None
    assert r["completion_rate"] is None
    assert r["recovery_rate"] is None
    assert r["departments_involved"] == 1
    assert r["is_cross_department"] is False


def test_workflow_run_belongs_to_the_period_it_started_in() -> None:
    f = facts(
        [agent("a1")],
        workflows=[workflow(["a1"], D(2026, 11, 23, 23, 50), "completed", D(2026, 11, 24, 0, 10))],
    )
    rows = workflow_kpis(f, periods(NOV23, NOV24)).collect()
    assert rows.select("period_start", "runs").rows() == [(NOV23, 1)]
    assert rows["duration_avg_s"].to_list() == [1200.0]


def test_workflow_kpis_one_row_per_period_and_workflow_name() -> None:
    t = D(2026, 11, 23, 10)
    f = facts(
        [agent("a1")],
        workflows=[
            workflow(["a1"], t, "running", name="a_flow"),
            workflow(["a1"], t, "running", name="a_flow"),
            workflow(["a1"], t, "running", name="b_flow"),
        ],
    )
    rows = workflow_kpis(f, periods(NOV23, NOV23, ("day", "week"))).collect()
    assert sorted(rows.select("period", "workflow_name", "runs").rows()) == [
        ("day", "a_flow", 2),
        ("day", "b_flow", 1),
        ("week", "a_flow", 2),
        ("week", "b_flow", 1),
    ]


# ---------------------------------------------------------------------------------------------
# business_value


def test_business_value_targets_default_to_the_seeds_annual_targets() -> None:
    rows = run_business_value(
        [figure(NOV23, "revenue_usd", 5000.0), figure(NOV23, "lead_pipeline_usd", 8000.0)],
        MIDNIGHT_24,
    )
    for r in rows.iter_rows(named=True):
        assert (r["revenue_target_usd"], r["lead_pipeline_target_usd"]) == (50_000.0, 80_000.0)
    first = one(rows, date=NOV23)
    assert first["revenue_progress_pct"] == pytest.approx(0.1)  # 5 000 / 50 000
    assert first["lead_pipeline_progress_pct"] == pytest.approx(0.1)  # 8 000 / 80 000


def test_business_value_target_from_the_table_covers_its_dates_inclusive() -> None:
    rows = run_business_value(
        [
            figure(date(2026, 6, 30), "revenue_usd", 600.0),
            figure(date(2026, 7, 1), "revenue_usd", 0.0),
        ],
        D(2026, 7, 1, 12),
        targets=[target("revenue_usd", date(2026, 1, 1), date(2026, 6, 30), 60_000.0)],
    )
    june = one(rows, date=date(2026, 6, 30))
    assert june["revenue_target_usd"] == 60_000.0
    assert june["revenue_progress_pct"] == pytest.approx(0.01)  # 600 / 60 000
    assert june["lead_pipeline_target_usd"] == 80_000.0  # no lead target row: the default
    assert one(rows, date=date(2026, 7, 1))["revenue_target_usd"] == 50_000.0


def test_business_value_has_every_date_from_first_figure_to_as_of() -> None:
    rows = run_business_value(
        [
            figure(date(2026, 11, 20), "revenue_usd", 100.0),
            figure(date(2026, 11, 22), "revenue_usd", 50.0),
        ],
        D(2026, 11, 25, 8),
    )
    assert rows["date"].to_list() == [date(2026, 11, d) for d in range(20, 26)]
    assert rows["revenue_usd"].to_list() == [100.0, 0.0, 50.0, 0.0, 0.0, 0.0]
    assert rows["revenue_ytd_usd"].to_list() == [100.0, 100.0, 150.0, 150.0, 150.0, 150.0]


def test_business_value_runs_to_the_last_figure_when_it_is_after_as_of() -> None:
    rows = run_business_value(
        [
            figure(date(2026, 11, 20), "revenue_usd", 1.0),
            figure(date(2026, 11, 22), "revenue_usd", 1.0),
        ],
        D(2026, 11, 21, 8),
    )
    assert rows["date"].to_list() == [date(2026, 11, 20), date(2026, 11, 21), date(2026, 11, 22)]


def test_business_value_sums_all_departments() -> None:
    rows = run_business_value(
        [
            figure(NOV23, "revenue_usd", 100.0, "finance"),
            figure(NOV23, "revenue_usd", 50.0, "marketing"),
            figure(NOV23, "cost_savings_usd", 7.0, "operations"),
        ],
        D(2026, 11, 23, 12),
    )
    r = one(rows, date=NOV23)
    assert (r["revenue_usd"], r["cost_savings_usd"]) == (150.0, 7.0)


def test_business_value_ytd_restarts_on_1_january() -> None:
    rows = run_business_value(
        [
            figure(date(2026, 12, 30), "revenue_usd", 10.0),
            figure(date(2026, 12, 31), "revenue_usd", 100.0),
            figure(date(2027, 1, 1), "revenue_usd", 40.0),
            figure(date(2027, 1, 2), "revenue_usd", 5.0),
        ],
        D(2027, 1, 2, 12),
        day_costs=[(date(2026, 12, 31), 2.0), (date(2027, 1, 1), 3.0)],
    )
    assert rows["revenue_ytd_usd"].to_list() == [10.0, 110.0, 40.0, 45.0]
    assert rows["operating_cost_ytd_usd"].to_list() == [0.0, 2.0, 3.0, 3.0]


def test_business_value_ytd_includes_costs_before_the_first_figure_of_the_year() -> None:
    rows = run_business_value(
        [figure(NOV23, "revenue_usd", 100.0), figure(NOV23, "cost_savings_usd", 20.0)],
        D(2026, 11, 23, 12),
        day_costs=[(date(2025, 12, 31), 50.0), (date(2026, 11, 1), 5.0), (NOV23, 1.0)],
    )
    r = one(rows, date=NOV23)
    assert r["operating_cost_usd"] == 1.0
    # 5 + 1 this year; the cost of 31 Dec 2025 belongs to another year
    assert r["operating_cost_ytd_usd"] == 6.0
    # (100 + 20 - 6) / 6
    assert r["roi"] == pytest.approx(19.0)


def test_business_value_roi() -> None:
    rows = run_business_value(
        [figure(NOV23, "revenue_usd", 300.0), figure(NOV23, "cost_savings_usd", 100.0)],
        D(2026, 11, 23, 12),
        day_costs=[(NOV23, 50.0)],
    )
    # (300 + 100 - 50) / 50
    assert one(rows, date=NOV23)["roi"] == pytest.approx(7.0)


def test_business_value_roi_without_operating_cost_is_null() -> None:
    rows = run_business_value([figure(NOV23, "revenue_usd", 300.0)], D(2026, 11, 23, 12))
    assert one(rows, date=NOV23)["roi"] is None


@pytest.mark.parametrize(
    ("on", "expected"),
    [
        (date(2028, 2, 29), 60 / 366),  # leap year: day 60 of 366
        (date(2028, 3, 1), 61 / 366),
        (date(2028, 12, 31), 1.0),
        (date(2026, 3, 1), 60 / 365),
        (date(2026, 12, 31), 1.0),
        (date(2026, 1, 1), 1 / 365),
    ],
)
def test_business_value_expected_progress_is_day_of_year_over_days_in_year(
    on: date, expected: float
) -> None:
    rows = run_business_value([figure(on, "revenue_usd", 1.0)], None)
    assert one(rows, date=on)["expected_progress_pct"] == pytest.approx(expected)


def test_business_value_projected_annual_revenue_in_a_leap_year() -> None:
    rows = run_business_value([figure(date(2028, 2, 29), "revenue_usd", 120.0)], None)
    # ytd 120 over 60 days, times 366 days
    assert one(rows, date=date(2028, 2, 29))["revenue_projected_annual_usd"] == pytest.approx(732.0)


@pytest.mark.parametrize(("revenue", "on_track"), [(1000.0, True), (999.0, False), (1001.0, True)])
def test_business_value_revenue_on_track_at_and_around_expected_progress(
    revenue: float, on_track: bool
) -> None:
    # 10 January: expected 10/365; with a 36 500 target, 1 000 ytd is exactly 10/365
    rows = run_business_value(
        [figure(date(2026, 1, 10), "revenue_usd", revenue)],
        None,
        targets=[target("revenue_usd", date(2026, 1, 1), date(2026, 12, 31), 36_500.0)],
    )
    assert one(rows, date=date(2026, 1, 10))["revenue_on_track"] is on_track


# ---------------------------------------------------------------------------------------------
# agent_health

AS_OF = D(2026, 11, 23, 12)


def test_agent_health_is_healthy_strictly_under_60_seconds() -> None:
    f = facts(
        [agent("fresh"), agent("stale"), agent("now")],
        heartbeats=[
            beat("fresh", AS_OF - timedelta(seconds=59)),
            beat("stale", AS_OF - timedelta(seconds=60)),
            beat("now", AS_OF),
        ],
    )
    rows = agent_health(f, AS_OF, PARAMS).collect()
    assert one(rows, agent_id="fresh")["is_healthy"] is True
    assert one(rows, agent_id="stale")["is_healthy"] is False
    assert one(rows, agent_id="stale")["seconds_since_heartbeat"] == 60.0
    assert one(rows, agent_id="now")["is_healthy"] is True
    assert one(rows, agent_id="now")["seconds_since_heartbeat"] == 0.0


def test_agent_health_reads_the_last_heartbeat() -> None:
    last = AS_OF - timedelta(seconds=10)
    f = facts(
        [agent("a1")],
        heartbeats=[
            beat(
                "a1",
                last,
                task_queue=2,
                message_queue=1,
                status="degraded",
                current_task_type="forecast",
            ),
            beat("a1", AS_OF - timedelta(minutes=5), task_queue=9, message_queue=9),
        ],
    )
    r = one(agent_health(f, AS_OF, PARAMS).collect(), agent_id="a1")
    assert r["last_heartbeat_at"] == last
    assert r["seconds_since_heartbeat"] == 10.0
    assert (r["last_status"], r["current_task_type"]) == ("degraded", "forecast")
    assert (r["task_queue"], r["message_queue"]) == (2, 1)


def test_agent_health_of_agent_that_never_sent_a_heartbeat() -> None:
    f = facts(
        [agent("a1"), agent("silent", "marketing")],
        tasks=[task("silent", AS_OF - timedelta(hours=1))],
        heartbeats=[beat("a1", AS_OF)],
    )
    r = one(agent_health(f, AS_OF, PARAMS).collect(), agent_id="silent")
    assert r["department"] == "marketing"
    assert r["is_healthy"] is False
    for column in (
        "last_heartbeat_at",
        "seconds_since_heartbeat",
        "last_status",
        "current_task_type",
        "task_queue",
        "message_queue",
    ):
        assert r[column] is None, column
    assert r["success_rate_24h"] == 1.0
    assert r["health_status"] == "green"


def test_agent_health_24h_window_excludes_its_start_and_includes_as_of() -> None:
    day_ago = AS_OF - timedelta(hours=24)
    f = facts(
        [agent("a1"), agent("quiet")],
        tasks=[
            task("a1", day_ago, 0.0),  # excluded: the window is open at its start
            task("a1", day_ago + timedelta(microseconds=1), 100.0),
            task("a1", AS_OF, 50.0),  # included: closed at as_of
            task("a1", AS_OF + timedelta(seconds=1), 0.0),  # after as_of
        ],
        messages=[
            responded("a1", day_ago, 10.0),  # excluded
            responded("a1", AS_OF - timedelta(hours=23), 1.0),
            responded("a1", AS_OF - timedelta(hours=1), 3.0),
            message("x", "a1", AS_OF - timedelta(hours=2), AS_OF - timedelta(hours=2)),  # no reply
        ],
        heartbeats=[beat("a1", AS_OF)],
    )
    rows = agent_health(f, AS_OF, PARAMS).collect()
    r = one(rows, agent_id="a1")
    assert r["success_rate_24h"] == pytest.approx(0.75)  # mean(100, 50) / 100
    assert r["response_time_avg_24h_s"] == pytest.approx(2.0)  # mean(1, 3)
    assert r["health_status"] == "red"
    quiet = one(rows, agent_id="quiet")
    assert quiet["success_rate_24h"] is None
    assert quiet["response_time_avg_24h_s"] is None
    assert quiet["health_status"] == "unknown"


def test_agent_health_has_one_row_per_registered_agent() -> None:
    f = facts([agent("a2"), agent("a1"), agent("a3")], heartbeats=[beat("a1", AS_OF)])
    assert agent_health(f, AS_OF, PARAMS).collect()["agent_id"].to_list() == ["a1", "a2", "a3"]


# ---------------------------------------------------------------------------------------------
# as_of


def _as_of(f: Facts) -> datetime | None:
    return as_of(f.heartbeats, activity_timestamps(f)).collect()["as_of"][0]


def test_as_of_is_the_latest_heartbeat_over_all_agents_even_with_later_activity() -> None:
    f = facts(
        [agent("a1"), agent("a2")],
        heartbeats=[beat("a1", D(2026, 11, 23, 10)), beat("a2", D(2026, 11, 23, 11))],
        tasks=[task("a1", D(2026, 11, 23, 12))],
    )
    assert _as_of(f) == D(2026, 11, 23, 11)


LATER = D(2026, 11, 23, 15)
EARLY = D(2026, 11, 23, 8)


@pytest.mark.parametrize(
    ("table", "row"),
    [
        ("tasks", task("a1", LATER)),
        ("workflows", workflow(["a1"], LATER, "running")),
        ("workflows", workflow(["a1"], EARLY, "completed", LATER)),
        ("messages", message("a1", "a1", LATER)),
        ("messages", message("a1", "a1", EARLY, LATER)),
        ("messages", message("a1", "a1", EARLY, EARLY, LATER)),
        ("resources", resource("a1", LATER, 1.0, 1.0)),
        ("errors", error_event("a1", LATER)),
    ],
    ids=[
        "task_timestamp",
        "workflow_started_at",
        "workflow_completed_at",
        "message_sent_at",
        "message_received_at",
        "message_responded_at",
        "resource_ts",
        "error_ts",
    ],
)
def test_as_of_without_heartbeats_is_the_latest_activity(
    table: str, row: dict[str, object]
) -> None:
    background: dict[str, list[dict[str, object]]] = {
        "tasks": [task("a1", D(2026, 11, 23, 9))],
        "workflows": [workflow(["a1"], EARLY, "completed", D(2026, 11, 23, 9))],
        "messages": [message("a1", "a1", EARLY, EARLY, D(2026, 11, 23, 9))],
        "resources": [resource("a1", D(2026, 11, 23, 9), 1.0, 1.0)],
        "errors": [error_event("a1", D(2026, 11, 23, 9))],
    }
    background[table] = [*background[table], row]
    f = facts([agent("a1")], **background)
    assert _as_of(f) == LATER


def test_as_of_without_any_fact_is_null() -> None:
    assert _as_of(facts([agent("a1")])) is None


# ---------------------------------------------------------------------------------------------
# Log events delivered twice count once: see tests/warehouse/test_store.py (the load keeps
# the first copy of each event).


# ---------------------------------------------------------------------------------------------
# Property: department totals are sums over its agents, the system's over the departments

AGENT_DEPARTMENTS = {"a1": "d1", "a2": "d1", "a3": "d2"}
PROPERTY_AGENTS = [agent(a, d) for a, d in AGENT_DEPARTMENTS.items()]

task_strategy = st.tuples(
    st.sampled_from(sorted(AGENT_DEPARTMENTS)),
    st.integers(min_value=0, max_value=2 * 24 * 60 - 1),  # minute within 23-24 Nov
    st.sampled_from([0.0, 50.0, 100.0]),
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(task_strategy, max_size=10))
def test_property_task_totals_add_up_from_agents_to_departments_to_system(
    drawn: list[tuple[str, int, float]],
) -> None:
    f = facts(
        PROPERTY_AGENTS,
        tasks=[task(a, D(2026, 11, 23) + timedelta(minutes=m), pct) for a, m, pct in drawn],
    )
    p = periods(NOV23, NOV24, PERIODS)
    as_of_ts = D(2026, 11, 25)
    agents = agent_kpis(f, p, as_of_ts, PARAMS).collect()
    departments = department_kpis(
        f, agents.lazy(), core.empty("fct_business_metrics"), p, PARAMS
    ).collect()
    system = system_kpis(f, agents.lazy(), p, PARAMS).collect()

    keys = ["period", "period_start"]
    by_agents = agents.group_by([*keys, "department"]).agg(
        pl.col("tasks_total", "tasks_succeeded", "tasks_failed").sum()
    )
    compared = departments.join(by_agents, on=[*keys, "department"], suffix="_agents")
    assert compared.height == departments.height == by_agents.height
    for column in ("tasks_total", "tasks_succeeded", "tasks_failed"):
        assert compared[column].to_list() == compared[f"{column}_agents"].to_list()

    by_departments = departments.group_by(keys).agg(pl.col("tasks_total").sum())
    compared = system.join(by_departments, on=keys, suffix="_departments")
    assert compared.height == system.height == by_departments.height
    assert compared["tasks_total"].to_list() == compared["tasks_total_departments"].to_list()
    # and every task is counted once per period kind
    for kind in PERIODS:
        assert system.filter(period=kind)["tasks_total"].sum() == len(drawn)


def test_period_marts_group_on_categorical_names_with_the_same_figures_as_on_text() -> None:
    # period_marts (what the pipeline calls) groups on categorical agent and department
    # names and an enumerated period; the mart functions tested above run on text. Both
    # must give the same rows, with text columns.
    start = D(2026, 11, 2)
    f = facts(
        agents=[agent("a1"), agent("a2", "marketing"), agent("a3", "marketing")],
        tasks=[
            task("a1", start + timedelta(hours=1), 100.0, 2.0),
            task("a2", start + timedelta(hours=2), 0.0, 7.0),
            task("a2", start + timedelta(days=8), 50.0, 3.0),
            task("ghost", start + timedelta(hours=3)),  # not in the registry
        ],
        messages=[
            message("a1", "a2", start, start + timedelta(minutes=1), start + timedelta(minutes=2)),
            message("a2", "a3", start + timedelta(days=1)),
        ],
        workflows=[workflow(["a1", "a2"], start + timedelta(hours=5), completed_at=start)],
        heartbeats=[beat("a1", start + timedelta(minutes=m)) for m in range(0, 180, 1)]
        + [beat("a3", start + timedelta(days=9))],
        resources=[resource("a2", start + timedelta(hours=4), 30.0, 500.0)],
        errors=[error_event("a3", start + timedelta(days=2))],
    )
    business = frame(
        "fct_business_metrics", [figure(date(2026, 11, 3), "revenue_usd", 10.0, "marketing")]
    )
    as_of_ts = start + timedelta(days=12)
    p = periods(date(2026, 11, 1), as_of_ts.date(), PERIODS)
    built = period_marts(f, business, p, as_of_ts, PARAMS)
    agents = agent_kpis(f, p, as_of_ts, PARAMS).collect()
    on_text = {
        "agent_kpis": agents,
        "department_kpis": department_kpis(f, agents.lazy(), business, p, PARAMS).collect(),
        "system_kpis": system_kpis(f, agents.lazy(), p, PARAMS).collect(),
        "workflow_kpis": workflow_kpis(f, p).collect(),
    }
    for name, expected in on_text.items():
        keys = [c for c in MART_KEYS[name] if c in expected.columns]
        assert built[name].schema == expected.schema, name
        assert_frame_equal(built[name].sort(keys), expected.sort(keys))
    assert built["agent_kpis"].height > 0 and built["workflow_kpis"].height == 3
