"""The Great Expectations suites: good frames pass, each broken rule fails by name.

Frames are made by hand with the key columns and the columns a rule reads; the suites add a
check only for the columns a frame has (keys excepted), so a frame tests only its rule.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import date, datetime, timedelta

import great_expectations.expectations as gxe
import polars as pl
import pytest
from great_expectations.core.id_dict import IDDict
from great_expectations.execution_engine import pandas_execution_engine
from great_expectations.expectations.expectation import Expectation
from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

from quality import expectations
from quality.expectations import CheckResult, validate_marts, validate_staged

D = date(2026, 1, 5)  # a Monday
W = D + timedelta(days=7)


# --------------------------------------------------------------------------------------------
# Hand-made marts: finance has agents a1 and a2, ops has agent b1.
# --------------------------------------------------------------------------------------------


def agent_kpis(**overrides: list[object]) -> pl.DataFrame:
    """Day rows of 2026-01-05 for a1, a2 (finance) and b1 (ops)."""
    columns: dict[str, list[object]] = {
        "period": ["day", "day", "day"],
        "period_start": [D, D, D],
        "period_end": [D + timedelta(days=1)] * 3,
        "agent_id": ["a1", "a2", "b1"],
        "department": ["finance", "finance", "ops"],
        "tasks_total": [4, 0, 2],
        "tasks_succeeded": [3, 0, 1],
        "tasks_failed": [1, 0, 1],
        "success_rate": [0.75, None, 0.5],
        "error_rate": [0.25, None, 0.5],
        "exec_time_avg_s": [2.0, None, 1.5],
        "exec_time_p50_s": [1.5, None, 1.5],
        "exec_time_p95_s": [4.5, None, 1.95],
        "exec_time_max_s": [5.0, None, 2.0],
        "messages_received": [2, 0, 0],
        "messages_responded": [1, 0, 0],
        "response_time_avg_s": [1.0, None, None],
        "uptime_pct": [1.0, 0.0, None],
        "uptime_hours": [24.0, 0.0, 0.0],
        "operating_cost_usd": [24.0, 0.0, 0.0],
        "health_status": ["red", "unknown", "red"],
        "rank_overall": [1, 3, 2],
        "rank_in_department": [1, 2, 1],
        "is_complete": [True, True, True],
    }
    columns.update(overrides)
    return pl.DataFrame(columns, schema_overrides={"period_start": pl.Date, "period_end": pl.Date})


def department_kpis(**overrides: list[object]) -> pl.DataFrame:
    """The departments' day rows, consistent with `agent_kpis()`."""
    columns: dict[str, list[object]] = {
        "period": ["day", "day"],
        "period_start": [D, D],
        "period_end": [D + timedelta(days=1)] * 2,
        "department": ["finance", "ops"],
        "agents_total": [1, 1],  # a2 was deployed later: agent rows can outnumber agents_total
        "agents_active": [1, 1],
        "agents_green": [0, 0],
        "agents_yellow": [0, 0],
        "agents_red": [1, 1],
        "tasks_total": [4, 2],
        "tasks_succeeded": [3, 1],
        "tasks_failed": [1, 1],
        "success_rate": [0.75, 0.5],
        "error_rate": [0.25, 0.5],
        "conversion_rate": [0.1, None],
        "revenue_progress_pct": [None, None],
        "operating_cost_usd": [24.0, 0.0],
        "revenue_usd": [-5.0, 0.0],  # a refund: business sums may be negative
        "health_status": ["red", "red"],
        "rank_success": [1, 2],
    }
    columns.update(overrides)
    return pl.DataFrame(columns, schema_overrides={"period_start": pl.Date, "period_end": pl.Date})


def system_kpis(**overrides: list[object]) -> pl.DataFrame:
    """The system's day row, consistent with the department and workflow rows."""
    columns: dict[str, list[object]] = {
        "period": ["day"],
        "period_start": [D],
        "period_end": [D + timedelta(days=1)],
        "agents_registered": [2],
        "agents_deployed": [2],
        "agents_healthy": [0],
        "tasks_total": [6],
        "success_rate": [4 / 6],
        "error_rate": [2 / 6],
        "workflows_started": [3],
        "workflows_completed": [1],
        "workflows_failed": [1],
        "workflows_running": [1],
        "workflow_completion_rate": [0.5],
        "operating_cost_usd": [24.0],
    }
    columns.update(overrides)
    return pl.DataFrame(columns, schema_overrides={"period_start": pl.Date, "period_end": pl.Date})


def workflow_kpis(**overrides: list[object]) -> pl.DataFrame:
    columns: dict[str, list[object]] = {
        "period": ["day", "day"],
        "period_start": [D, D],
        "period_end": [D + timedelta(days=1)] * 2,
        "workflow_name": ["close", "nurture"],
        "runs": [2, 1],
        "completed": [1, 0],
        "failed": [0, 1],
        "running": [1, 0],
        "completion_rate": [1.0, 0.0],
        "errors": [2, 0],
        "errors_recovered": [1, 0],
        "departments_involved": [2, 1],
        "is_cross_department": [True, False],
    }
    columns.update(overrides)
    return pl.DataFrame(columns, schema_overrides={"period_start": pl.Date, "period_end": pl.Date})


def business_value(**overrides: list[object]) -> pl.DataFrame:
    columns: dict[str, list[object]] = {
        "date": [date(2026, 1, 1), date(2026, 1, 2)],
        "revenue_usd": [100.0, 0.0],
        "operating_cost_usd": [10.0, 5.0],
        "operating_cost_ytd_usd": [10.0, 15.0],
        "revenue_target_usd": [50_000.0, 50_000.0],
        "lead_pipeline_target_usd": [80_000.0, 80_000.0],
        "revenue_progress_pct": [0.002, 0.002],
        "lead_pipeline_progress_pct": [1.5, 1.6],  # may exceed 1
        "expected_progress_pct": [1 / 365, 2 / 365],
    }
    columns.update(overrides)
    return pl.DataFrame(columns)


def agent_health(**overrides: list[object]) -> pl.DataFrame:
    columns: dict[str, list[object]] = {
        "agent_id": ["a1", "a2"],
        "last_heartbeat_at": [datetime(2026, 1, 5, 23, 59), None],
        "seconds_since_heartbeat": [30.0, None],
        "is_healthy": [True, False],
        "last_status": ["ok", None],
        "task_queue": [3, None],
        "success_rate_24h": [0.96, None],
        "response_time_avg_24h_s": [1.0, None],
        "health_status": ["green", "unknown"],
    }
    columns.update(overrides)
    return pl.DataFrame(columns)


def alerts(**overrides: list[object]) -> pl.DataFrame:
    """a1's success rate 0.75 is below the red line 0.80."""
    columns: dict[str, list[object]] = {
        "period_start": [D],
        "agent_id": ["a1"],
        "department": ["finance"],
        "metric": ["success_rate"],
        "level": ["critical"],
        "value": [0.75],
        "threshold": [0.80],
    }
    columns.update(overrides)
    return pl.DataFrame(columns, schema_overrides={"period_start": pl.Date})


def good_marts() -> dict[str, pl.DataFrame]:
    return {
        "agent_kpis": agent_kpis(),
        "department_kpis": department_kpis(),
        "system_kpis": system_kpis(),
        "workflow_kpis": workflow_kpis(),
        "business_value": business_value(),
        "agent_health": agent_health(),
        "alerts": alerts(),
    }


def failures(results: list[CheckResult]) -> list[CheckResult]:
    return [r for r in results if not r.success]


def the_failure(results: list[CheckResult]) -> CheckResult:
    """The single failing check (a broken frame should break one rule, not many)."""
    failed = failures(results)
    assert len(failed) == 1, [(r.table, r.expectation, r.column, r.observed) for r in failed]
    return failed[0]


@pytest.fixture(scope="module")
def good_mart_results() -> list[CheckResult]:
    return validate_marts(good_marts())


# --------------------------------------------------------------------------------------------
# Marts: the good case
# --------------------------------------------------------------------------------------------


def test_good_marts_pass_every_check(good_mart_results: list[CheckResult]) -> None:
    assert failures(good_mart_results) == []
    tables = {r.table for r in good_mart_results}
    assert tables == {f"marts.{name}" for name in good_marts()}
    assert all(r.suite == "marts" for r in good_mart_results)


def test_good_marts_are_checked_by_the_rules_that_matter(
    good_mart_results: list[CheckResult],
) -> None:
    checked = {(r.table, r.expectation, r.column) for r in good_mart_results}
    agents = "marts.agent_kpis"
    for expected in [
        (agents, "expect_compound_columns_to_be_unique", "period, period_start, agent_id"),
        (agents, "expect_column_values_to_not_be_null", "agent_id"),
        (agents, "expect_column_values_to_be_between", "success_rate"),
        (agents, "expect_column_values_to_be_between", "uptime_pct"),
        (agents, "expect_column_values_to_be_between", "tasks_total"),
        (
            agents,
            "expect_column_pair_values_a_to_be_greater_than_b",
            "exec_time_p50_s<=exec_time_p95_s",
        ),
        (
            agents,
            "expect_column_pair_values_a_to_be_greater_than_b",
            "exec_time_p95_s<=exec_time_max_s",
        ),
        (
            agents,
            "expect_column_pair_values_a_to_be_greater_than_b",
            "exec_time_avg_s<=exec_time_max_s",
        ),
        (
            agents,
            "expect_column_pair_values_a_to_be_greater_than_b",
            "tasks_succeeded+tasks_failed<=tasks_total",
        ),
        (agents, "expect_column_values_to_be_in_set", "health_status"),
        (agents, "expect_column_values_to_be_in_set", "period"),
        (agents, "expect_column_pair_values_a_to_be_greater_than_b", "period_start<period_end"),
        (
            "marts.department_kpis",
            "expect_column_pair_values_to_be_equal",
            "tasks_total=sum(agent_kpis.tasks_total)",
        ),
        (
            "marts.system_kpis",
            "expect_column_pair_values_to_be_equal",
            "tasks_total=sum(department_kpis.tasks_total)",
        ),
        ("marts.alerts", "expect_column_values_to_be_in_set", "level"),
        ("marts.alerts", "expect_column_values_to_be_in_set", "metric"),
        ("marts.business_value", "expect_column_values_to_be_unique", "date"),
    ]:
        assert expected in checked


def test_results_carry_kwargs_as_json_and_passing_ones_say_ok(
    good_mart_results: list[CheckResult],
) -> None:
    # Passing checks run for their verdict only (a failing one runs again for its details,
    # see the cases below).
    rate = next(
        r
        for r in good_mart_results
        if r.table == "marts.agent_kpis"
        and r.column == "success_rate"
        and "between" in r.expectation
    )
    assert '"max_value": 1.0' in rate.details and '"min_value": 0.0' in rate.details
    assert rate.success and rate.observed == "ok"


# --------------------------------------------------------------------------------------------
# Marts: each rule broken once
#
# GX spends ~30 ms per expectation, so each mart is validated once, with one extra row per
# broken rule (keyed by the rule's case name); each case then checks that its rule failed
# on its row, and on its row only.
# --------------------------------------------------------------------------------------------

Case = tuple[str, dict[str, object], str, str]  # (case id, overrides, expectation, column)

BETWEEN = "expect_column_values_to_be_between"
NOT_NULL = "expect_column_values_to_not_be_null"
IN_SET = "expect_column_values_to_be_in_set"
PAIR = "expect_column_pair_values_a_to_be_greater_than_b"
UNIQUE = "expect_compound_columns_to_be_unique"

AGENT_ROW: dict[str, object] = {
    "period": "day",
    "period_start": D,
    "period_end": D + timedelta(days=1),
    "agent_id": "a1",
    "department": "finance",
    "tasks_total": 2,
    "tasks_succeeded": 1,
    "tasks_failed": 1,
    "success_rate": 0.5,
    "error_rate": 0.5,
    "exec_time_avg_s": 1.5,
    "exec_time_p50_s": 1.0,
    "exec_time_p95_s": 2.0,
    "exec_time_max_s": 3.0,
    "messages_received": 1,
    "messages_responded": 1,
    "response_time_avg_s": 1.0,
    "uptime_pct": 0.5,
    "operating_cost_usd": 1.0,
    "health_status": "red",
    "rank_overall": 1,
    "is_complete": True,
}
NO_TASKS: dict[str, object] = {
    "tasks_total": 0,
    "tasks_succeeded": 0,
    "tasks_failed": 0,
    "success_rate": None,
    "error_rate": None,
}
AGENT_CASES: list[Case] = [
    ("rate_above_one", {"success_rate": 1.2}, BETWEEN, "success_rate"),
    ("uptime_below_zero", {"uptime_pct": -0.1}, BETWEEN, "uptime_pct"),
    ("negative_count", {"tasks_failed": -1}, BETWEEN, "tasks_failed"),
    ("null_count", {"messages_received": None}, NOT_NULL, "messages_received"),
    ("negative_cost", {"operating_cost_usd": -0.5}, BETWEEN, "operating_cost_usd"),
    ("p50_above_p95", {"exec_time_p50_s": 2.5}, PAIR, "exec_time_p50_s<=exec_time_p95_s"),
    ("p95_above_max", {"exec_time_p95_s": 3.5}, PAIR, "exec_time_p95_s<=exec_time_max_s"),
    ("avg_above_max", {"exec_time_avg_s": 3.5}, PAIR, "exec_time_avg_s<=exec_time_max_s"),
    (
        "more_outcomes_than_tasks",
        {"tasks_succeeded": 2},
        PAIR,
        "tasks_succeeded+tasks_failed<=tasks_total",
    ),
    (
        "error_rate_without_tasks",
        {**NO_TASKS, "error_rate": 0.0},
        IN_SET,
        "error_rate is NULL iff tasks_total=0",
    ),
    (
        "more_responded_than_received",
        {"messages_responded": 2},
        PAIR,
        "messages_responded<=messages_received",
    ),
    ("bad_health_status", {"health_status": "amber"}, IN_SET, "health_status"),
    (
        "status_without_indicators",
        {**NO_TASKS, "response_time_avg_s": None, "health_status": "green"},
        IN_SET,
        "health_status=unknown iff success_rate and response_time_avg_s are NULL",
    ),
    ("rank_zero", {"rank_overall": 0}, BETWEEN, "rank_overall"),
    ("bad_period", {"period": "year"}, IN_SET, "period"),
    (
        "week_from_tuesday",
        {"period": "week", "period_start": D + timedelta(days=1), "period_end": W + timedelta(1)},
        IN_SET,
        "period_start aligned to period",
    ),
    (
        "period_end_two_days_on",
        {"period_end": D + timedelta(days=2)},
        IN_SET,
        "period_end = period_start + period",
    ),
]


def frame_with_cases(
    good: pl.DataFrame, row: dict[str, object], key: str, cases: list[Case]
) -> pl.DataFrame:
    """`good` plus one row per case: `row` with the case's overrides, keyed by its id."""
    broken = [{**row, **overrides, key: case_id} for case_id, overrides, _, _ in cases]
    return pl.concat([good, pl.DataFrame(broken, schema=good.schema)])


def assert_each_case_fails_alone(results: list[CheckResult], cases: list[Case], table: str) -> None:
    """Every case's rule failed on its own row only, and no other rule failed."""
    failed = {(r.table, r.expectation, r.column): r for r in failures(results)}
    expected = {(table, expectation, column) for _, _, expectation, column in cases}
    assert set(failed) == expected, sorted(set(failed) ^ expected)
    for case_id, _, expectation, column in cases:
        observed = failed[table, expectation, column].observed
        assert observed.startswith("1 of "), (case_id, observed)
        assert f"={case_id}]" in observed or f"={case_id}," in observed, (case_id, observed)


@pytest.fixture(scope="module")
def agent_case_results() -> list[CheckResult]:
    good = pl.DataFrame([AGENT_ROW]).with_columns(
        pl.col("period_start", "period_end").cast(pl.Date)
    )
    return validate_marts(
        {"agent_kpis": frame_with_cases(good, AGENT_ROW, "agent_id", AGENT_CASES)}
    )


def test_every_broken_agent_rule_fails_on_its_row_only(
    agent_case_results: list[CheckResult],
) -> None:
    assert_each_case_fails_alone(agent_case_results, AGENT_CASES, "marts.agent_kpis")


@pytest.mark.parametrize(
    ("case_id", "expectation", "column"),
    [(case_id, expectation, column) for case_id, _, expectation, column in AGENT_CASES],
)
def test_a_broken_agent_rule_fails_by_name(
    agent_case_results: list[CheckResult], case_id: str, expectation: str, column: str
) -> None:
    failure = next(
        r
        for r in failures(agent_case_results)
        if (r.table, r.expectation, r.column) == ("marts.agent_kpis", expectation, column)
    )
    assert f"agent_id={case_id}" in failure.observed


def test_gx_without_repeated_work_changes_no_result(
    agent_case_results: list[CheckResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same broken rows, validated while GX rebuilds every configuration as it does alone.
    monkeypatch.setattr(expectations, "_gx_without_repeated_work", contextlib.nullcontext)
    good = pl.DataFrame([AGENT_ROW]).with_columns(
        pl.col("period_start", "period_end").cast(pl.Date)
    )
    frame = frame_with_cases(good, AGENT_ROW, "agent_id", AGENT_CASES)
    rebuilt = validate_marts({"agent_kpis": frame})
    assert len(failures(rebuilt)) >= len(AGENT_CASES)
    assert rebuilt == agent_case_results


def test_gx_without_repeated_work_leaves_gx_as_it_was() -> None:
    def gx_state() -> tuple[object, ...]:
        return (
            Expectation.__dict__["configuration"],
            IDDict.__dict__["to_id"],
            ExpectationConfiguration.__dict__["to_domain_obj"],
            pandas_execution_engine.HASH_THRESHOLD,
        )

    before = gx_state()
    with expectations._gx_without_repeated_work():
        during = gx_state()
        assert all(now is not then for now, then in zip(during[:3], before[:3], strict=True))
        assert pandas_execution_engine.HASH_THRESHOLD == 0
    assert gx_state() == before
    assert before[3] > 0


def test_an_expectation_is_described_again_once_its_configuration_changed() -> None:
    configuration = gxe.ExpectColumnValuesToNotBeNull(column="a").configuration
    with expectations._gx_without_repeated_work():
        first = configuration.to_domain_obj()
        assert configuration.to_domain_obj() is first
        configuration.kwargs.update({"batch_id": "b"})
        again = configuration.to_domain_obj()
    assert again is not first
    assert again.batch_id == "b"
    assert first.batch_id is None


def test_a_metric_id_is_that_of_gx_whatever_the_types_of_its_arguments() -> None:
    arguments = [
        {"column": "x", "batch_id": "b"},
        {"column": "x", "min_value": 1, "max_value": None},
        {"column": "x", "min_value": 1.0, "max_value": None},
        {"column": "x", "min_value": True, "max_value": None},
        {"column": "x", "value_set": ["a", "b"]},
    ]
    alone = [IDDict(a).to_id() for a in arguments]
    with expectations._gx_without_repeated_work():
        twice = [[IDDict(a).to_id() for a in arguments] for _ in range(2)]
    assert twice == [alone, alone]
    assert len(set(alone)) == len(alone)


KEYS = {"period": ["day"], "period_start": [D], "agent_id": ["a1"]}


def agent_frame(**columns: list[object]) -> pl.DataFrame:
    """agent_kpis rows with their key and the given columns."""
    return pl.DataFrame({**KEYS, **columns}, schema_overrides={"period_start": pl.Date})


def test_period_end_not_after_period_start_fails() -> None:
    failed = failures(validate_marts({"agent_kpis": agent_frame(period_end=[D])}))
    assert {(r.expectation, r.column) for r in failed} == {
        (PAIR, "period_start<period_end"),
        (IN_SET, "period_end = period_start + period"),
    }


def test_a_duplicate_key_fails_and_names_the_key() -> None:
    frame = agent_frame(agent_id=["a1", "a1"], period=["day"] * 2, period_start=[D] * 2)
    failure = the_failure(validate_marts({"agent_kpis": frame}))
    assert (failure.expectation, failure.column) == (UNIQUE, "period, period_start, agent_id")
    assert failure.observed.startswith("2 of 2 rows unexpected")
    assert "agent_id=a1" in failure.observed


def test_a_null_key_fails() -> None:
    failure = the_failure(validate_marts({"agent_kpis": agent_frame(agent_id=[None])}))
    assert (failure.expectation, failure.column) == (NOT_NULL, "agent_id")


def test_a_missing_key_column_fails() -> None:
    frame = pl.DataFrame({"period": ["day"], "period_start": [D]})
    failed = failures(validate_marts({"agent_kpis": frame}))
    assert [(r.expectation, r.column) for r in failed] == [("expect_column_to_exist", "agent_id")]


def test_observed_names_the_failing_row() -> None:
    frame = agent_frame(
        period=["day", "day"], period_start=[D, D], agent_id=["a1", "a2"], success_rate=[0.5, 1.2]
    )
    failure = the_failure(validate_marts({"agent_kpis": frame}))
    assert failure.observed == (
        "1 of 2 rows unexpected (50%); e.g. [period=day, period_start=2026-01-05, agent_id=a2] 1.2"
    )


def test_a_mean_one_ulp_above_the_maximum_passes() -> None:
    # mean(0.1, 0.1, 0.1) in floating point is 0.10000000000000002 > 0.1: rounding, not a bug.
    mean = sum([0.1, 0.1, 0.1]) / 3
    assert mean > 0.1
    frame = agent_frame(exec_time_avg_s=[mean], exec_time_max_s=[0.1])
    assert failures(validate_marts({"agent_kpis": frame})) == []


def test_rates_and_statistics_may_be_null_without_tasks() -> None:
    frame = agent_frame(
        **{name: [value] for name, value in NO_TASKS.items()},
        exec_time_p50_s=[None],
        exec_time_p95_s=[None],
        exec_time_max_s=[None],
        uptime_pct=[None],
        response_time_avg_s=[None],
        health_status=["unknown"],
    )
    assert failures(validate_marts({"agent_kpis": frame})) == []


OTHER_MART_CASES: dict[str, tuple[Callable[[], pl.DataFrame], str, list[Case]]] = {
    "department_kpis": (
        department_kpis,
        "department",
        [
            ("success_rate_above_one", {"success_rate": 1.5}, BETWEEN, "success_rate"),
            ("bad_health_status", {"health_status": "blue"}, IN_SET, "health_status"),
        ],
    ),
    "workflow_kpis": (
        workflow_kpis,
        "workflow_name",
        [
            ("completion_above_one", {"completion_rate": 2.0}, BETWEEN, "completion_rate"),
            (
                "more_recovered_than_errors",
                {"errors_recovered": 3},
                PAIR,
                "errors_recovered<=errors",
            ),
            (
                "status_counts_short",
                {"running": 0},
                "expect_column_pair_values_to_be_equal",
                "completed+failed+running=runs",
            ),
            (
                "not_flagged_cross_department",
                {"is_cross_department": False},
                IN_SET,
                "is_cross_department iff departments_involved>=2",
            ),
        ],
    ),
    "agent_health": (
        agent_health,
        "agent_id",
        [
            ("bad_last_status", {"last_status": "down"}, IN_SET, "last_status"),
            (
                "healthy_without_heartbeat",
                {"last_heartbeat_at": None, "seconds_since_heartbeat": None},
                IN_SET,
                "is_healthy only with a heartbeat",
            ),
        ],
    ),
    "alerts": (
        alerts,
        "agent_id",
        [
            ("bad_level", {"level": "info"}, IN_SET, "level"),
            ("bad_metric", {"metric": "uptime_pct"}, IN_SET, "metric"),
            ("value_within_threshold", {"value": 0.85}, IN_SET, "value beyond threshold"),
        ],
    ),
}


@pytest.mark.parametrize("mart", sorted(OTHER_MART_CASES))
def test_every_broken_rule_of_another_mart_fails_on_its_row_only(mart: str) -> None:
    build, key, cases = OTHER_MART_CASES[mart]
    good = build()
    frame = frame_with_cases(good, good.row(0, named=True), key, cases)
    assert_each_case_fails_alone(validate_marts({mart: frame}), cases, f"marts.{mart}")


def test_broken_rules_of_system_kpis_fail() -> None:
    frame = system_kpis(deployment_success_rate=[1.2], agents_deployed=[3])
    failed = failures(validate_marts({"system_kpis": frame}))
    assert {(r.expectation, r.column) for r in failed} == {
        (BETWEEN, "deployment_success_rate"),
        (PAIR, "agents_deployed<=agents_registered"),
    }


def test_broken_rules_of_business_value_fail() -> None:
    # 2026-01-01 and 01-02 are good; 01-03 has an expected progress above 1, and 01-06
    # leaves a gap after 01-04 (whose negative lead progress is allowed: refunds exist).
    frame = pl.concat(
        [
            business_value(),
            business_value(
                date=[date(2026, 1, 3), date(2026, 1, 4)],
                expected_progress_pct=[1.2, 4 / 365],
                lead_pipeline_progress_pct=[1.5, -0.1],
            ),
            business_value(date=[date(2026, 1, 6), date(2026, 1, 7)]),
        ]
    )
    failed = failures(validate_marts({"business_value": frame}))
    assert {(r.column, r.observed.split(";")[1].strip()) for r in failed} == {
        ("expected_progress_pct", "e.g. [date=2026-01-03] 1.2"),
        ("date follows the previous date by 1 day", "e.g. [date=2026-01-06] False"),
    }


def test_revenue_and_lead_progress_may_exceed_one_or_go_negative() -> None:
    frame = business_value(revenue_progress_pct=[1.3, 2.0], lead_pipeline_progress_pct=[-0.1, 0.5])
    assert failures(validate_marts({"business_value": frame})) == []


# --------------------------------------------------------------------------------------------
# Marts: relations between marts
# --------------------------------------------------------------------------------------------

# Only the columns the relations read, to keep each validation short.
AGENT_SUMS = ["period", "period_start", "agent_id", "department", "tasks_total"]
AGENT_SUMS += ["tasks_succeeded", "tasks_failed", "health_status", "operating_cost_usd"]
DEPARTMENT_SUMS = ["period", "period_start", "department", "tasks_total", "tasks_succeeded"]
DEPARTMENT_SUMS += ["tasks_failed", "agents_green", "agents_yellow", "agents_red"]
DEPARTMENT_SUMS += ["agents_active", "operating_cost_usd"]
SYSTEM_SUMS = ["period", "period_start", "tasks_total", "operating_cost_usd", "agents_healthy"]
SYSTEM_SUMS += ["workflows_started", "workflows_completed", "workflows_failed"]
SYSTEM_SUMS += ["workflows_running"]
WORKFLOW_SUMS = ["period", "period_start", "workflow_name", "runs", "completed", "failed"]
WORKFLOW_SUMS += ["running"]


def test_department_figures_not_those_of_its_agents_fail() -> None:
    marts = {
        "agent_kpis": agent_kpis().select(AGENT_SUMS),
        # finance's agents have 4 + 0 tasks and cost 24 + 0; ops has one red agent row
        "department_kpis": department_kpis(
            tasks_total=[5, 2], agents_red=[1, 2], operating_cost_usd=[24.01, 0.0]
        ).select(DEPARTMENT_SUMS),
    }
    failed = {r.column: r.observed for r in failures(validate_marts(marts))}
    assert set(failed) == {
        "tasks_total=sum(agent_kpis.tasks_total)",
        "agents_red=count(agent_kpis.health_status=red)",
        "operating_cost_usd=sum(agent_kpis.operating_cost_usd)",
    }
    assert "department=finance] (5, 4)" in failed["tasks_total=sum(agent_kpis.tasks_total)"]
    assert "department=ops] (2, 1)" in failed["agents_red=count(agent_kpis.health_status=red)"]
    assert (
        "department=finance] 0.01"
        in failed["operating_cost_usd=sum(agent_kpis.operating_cost_usd)"]
    )


def test_agent_rows_of_a_department_without_a_row_fail() -> None:
    marts = {
        "agent_kpis": agent_kpis().select(AGENT_SUMS),
        "department_kpis": department_kpis().select(DEPARTMENT_SUMS).head(1),
    }
    failed = failures(validate_marts(marts))
    assert {r.column for r in failed} == {
        "department row for every agent_kpis (period, period_start, department)",
        # ops' agent b1 has 2 tasks, 1 succeeded, 1 failed: the missing row counts none
        "tasks_total=sum(agent_kpis.tasks_total)",
        "tasks_succeeded=sum(agent_kpis.tasks_succeeded)",
        "tasks_failed=sum(agent_kpis.tasks_failed)",
        "agents_red=count(agent_kpis.health_status=red)",
    }


def test_system_figures_not_the_sums_of_departments_and_workflows_fail() -> None:
    marts = {
        "department_kpis": department_kpis().select(DEPARTMENT_SUMS),
        "workflow_kpis": workflow_kpis().select(WORKFLOW_SUMS),
        "system_kpis": system_kpis(
            tasks_total=[7], workflows_started=[4], workflows_running=[2]
        ).select(SYSTEM_SUMS),
    }
    failed = failures(validate_marts(marts))
    assert {(r.table, r.column) for r in failed} == {
        ("marts.system_kpis", "tasks_total=sum(department_kpis.tasks_total)"),
        ("marts.system_kpis", "workflows_started=sum(workflow_kpis.runs)"),
        ("marts.system_kpis", "workflows_running=sum(workflow_kpis.running)"),
    }


def test_alert_value_not_that_of_the_agent_day_fails() -> None:
    marts = {
        "agent_kpis": agent_kpis().select("period", "period_start", "agent_id", "success_rate"),
        "alerts": alerts(value=[0.7]),
    }
    failure = the_failure(validate_marts(marts))
    assert (failure.table, failure.column) == (
        "marts.alerts",
        "value=agent_kpis.<metric> of the day row",
    )


def test_agent_rows_may_outnumber_a_departments_registered_agents(
    good_mart_results: list[CheckResult],
) -> None:
    # finance: agents_total 1 (a2 deployed later) but two agent rows; no rule says otherwise.
    assert department_kpis()["agents_total"][0] < 2
    assert failures(good_mart_results) == []


# --------------------------------------------------------------------------------------------
# Marts: empty and missing
# --------------------------------------------------------------------------------------------


def test_empty_marts_pass() -> None:
    empty = {name: frame.clear() for name, frame in good_marts().items()}
    results = validate_marts(empty)
    assert results and failures(results) == []


def test_missing_marts_are_skipped() -> None:
    assert validate_marts({}) == []
    results = validate_marts({"alerts": alerts()})
    assert {r.table for r in results} == {"marts.alerts"}


# --------------------------------------------------------------------------------------------
# Staged core tables
# --------------------------------------------------------------------------------------------

T = datetime(2026, 1, 5, 12, 0)


def staged_tables() -> dict[str, pl.DataFrame]:
    """One or two valid rows per core table, naming agents a1 and a2."""
    later = T + timedelta(minutes=5)
    return {
        "dim_agents": pl.DataFrame(
            {
                "agent_id": ["a1", "a2"],
                "deployed_at": [T, T],
                "deployment_status": ["deployed", "retired"],
                "hourly_cost_usd": [1.0, 0.5],
            }
        ),
        "fct_task_runs": pl.DataFrame(
            {
                "task_id": [1, 2],
                "agent_id": ["a1", "a2"],
                "execution_time_s": [0.0, 3.5],
                "success_pct": [0.0, 100.0],
                "completed_at": [T, later],
            }
        ),
        "fct_workflow_runs": pl.DataFrame(
            {
                "workflow_id": ["w1", "w2"],
                "initiator_agent_id": ["a1", "a2"],
                "started_at": [T, T],
                "completed_at": [later, None],
                "status": ["completed", "running"],
                "errors": [2, 0],
                "errors_recovered": [2, 0],
            }
        ),
        "fct_messages": pl.DataFrame(
            {
                "message_id": ["m1", "m2"],
                "message_row_id": [1, 2],
                "sender_agent_id": ["a1", "a2"],
                "receiver_agent_id": ["a2", "a1"],
                "sent_at": [T, T],
                "received_at": [T, None],
                "responded_at": [later, None],
                "status": ["delivered", "pending"],
            }
        ),
        "fct_business_metrics": pl.DataFrame(
            {
                "metric_date": [D, D],
                "department": ["finance", "finance"],
                "metric_name": ["revenue_usd", "conversions"],
                "value": [-10.0, 3.0],
            }
        ),
        "dim_business_targets": pl.DataFrame(
            {
                "metric_name": ["revenue_usd"],
                "period_start": [date(2026, 1, 1)],
                "period_end": [date(2026, 1, 1)],  # inclusive: a one-day target
                "target_value": [100.0],
            }
        ),
        "fct_heartbeats": pl.DataFrame(
            {
                "agent_id": ["a1", "a1"],
                "ts": [T, later],
                "status": ["ok", "degraded"],
                "task_queue": [0, 4],
                "message_queue": [1, 0],
            }
        ),
        "fct_resource_samples": pl.DataFrame(
            {"agent_id": ["a1"], "ts": [T], "cpu_pct": [250.0], "memory_mb": [0.0]}
        ),
        "fct_agent_errors": pl.DataFrame({"agent_id": ["a2"], "ts": [T]}),
    }


def test_good_staged_tables_pass_every_check() -> None:
    results = validate_staged(staged_tables())
    assert failures(results) == []
    assert {r.table for r in results} == {f"core.{name}" for name in staged_tables()}
    assert all(r.suite == "staged" for r in results)


EARLIER = T - timedelta(seconds=1)
# (table, the broken row's columns (its key included), expectation, column, its key as shown)
STAGED_CASES: list[tuple[str, dict[str, object], str, str, str]] = [
    (
        "fct_task_runs",
        {"task_id": 11, "execution_time_s": -1.0},
        BETWEEN,
        "execution_time_s",
        "task_id=11",
    ),
    ("fct_task_runs", {"task_id": 12, "success_pct": 100.5}, BETWEEN, "success_pct", "task_id=12"),
    ("fct_task_runs", {"task_id": 13, "agent_id": "zz"}, IN_SET, "agent_id", "task_id=13"),
    (
        "dim_agents",
        {"agent_id": "a9", "deployment_status": "pending"},
        IN_SET,
        "deployment_status",
        "agent_id=a9",
    ),
    (
        "fct_workflow_runs",
        {"workflow_id": "w8", "status": "paused"},
        IN_SET,
        "status",
        "workflow_id=w8",
    ),
    (
        "fct_workflow_runs",
        {"workflow_id": "w9", "completed_at": EARLIER},
        PAIR,
        "started_at<=completed_at",
        "workflow_id=w9",
    ),
    (
        "fct_workflow_runs",
        {"workflow_id": "w10", "errors_recovered": 3},
        PAIR,
        "errors_recovered<=errors",
        "workflow_id=w10",
    ),
    (
        "fct_messages",
        {"message_id": "m8", "message_row_id": 8, "status": "lost"},
        IN_SET,
        "status",
        "message_id=m8",
    ),
    (
        "fct_messages",
        {"message_id": "m9", "message_row_id": 9, "received_at": EARLIER},
        PAIR,
        "sent_at<=received_at",
        "message_id=m9",
    ),
    (
        "fct_messages",
        {"message_id": "m10", "message_row_id": 10, "responded_at": EARLIER},
        PAIR,
        "received_at<=responded_at",
        "message_id=m10",
    ),
    (
        "fct_business_metrics",
        {"metric_name": "leads_generated", "value": None},
        NOT_NULL,
        "value",
        "metric_name=leads_generated",
    ),
    (
        "dim_business_targets",
        {"metric_name": "lead_pipeline_usd", "period_end": date(2025, 12, 31)},
        PAIR,
        "period_start<=period_end",
        "metric_name=lead_pipeline_usd",
    ),
    (
        "fct_heartbeats",
        {"ts": T + timedelta(hours=1), "status": "down"},
        IN_SET,
        "status",
        "ts=2026-01-05 13:00:00",
    ),
    (
        "fct_heartbeats",
        {"ts": T + timedelta(hours=2), "task_queue": -1},
        BETWEEN,
        "task_queue",
        "ts=2026-01-05 14:00:00",
    ),
    (
        "fct_resource_samples",
        {"ts": T + timedelta(hours=1), "memory_mb": -1.0},
        BETWEEN,
        "memory_mb",
        "ts=2026-01-05 13:00:00",
    ),
]
# A copy of a table's first row: its key twice (and, for messages, its row id).
DUPLICATED: dict[str, list[tuple[str, str, str]]] = {
    "fct_task_runs": [("expect_column_values_to_be_unique", "task_id", "task_id=1")],
    "fct_messages": [
        ("expect_column_values_to_be_unique", "message_id", "message_id=m1"),
        ("expect_column_values_to_be_unique", "message_row_id", "message_id=m1"),
    ],
    "fct_business_metrics": [
        (UNIQUE, "metric_date, department, metric_name", "metric_name=revenue_usd")
    ],
    "fct_heartbeats": [(UNIQUE, "agent_id, ts", "ts=2026-01-05 12:00:00")],
}


@pytest.fixture(scope="module")
def staged_case_results() -> list[CheckResult]:
    tables = staged_tables()
    extra: dict[str, list[dict[str, object]]] = {name: [] for name in tables}
    for table, row, _, _, _ in STAGED_CASES:
        extra[table].append({**tables[table].row(0, named=True), **row})
    for table in DUPLICATED:
        extra[table].append(tables[table].row(0, named=True))
    broken = {
        name: pl.concat([frame, pl.DataFrame(extra[name], schema=frame.schema)])
        for name, frame in tables.items()
    }
    return validate_staged(broken)


def test_every_broken_staged_rule_fails_and_nothing_else(
    staged_case_results: list[CheckResult],
) -> None:
    failed = {(r.table, r.expectation, r.column) for r in failures(staged_case_results)}
    expected = {(f"core.{t}", e, c) for t, _, e, c, _ in STAGED_CASES} | {
        (f"core.{t}", e, c) for t, checks in DUPLICATED.items() for e, c, _ in checks
    }
    assert failed == expected, sorted(failed ^ expected)


def staged_failure(results: list[CheckResult], table: str, expectation: str, column: str) -> str:
    """What the failing check `expectation` on `column` of `table` observed."""
    return next(
        r.observed
        for r in failures(results)
        if (r.table, r.expectation, r.column) == (f"core.{table}", expectation, column)
    )


@pytest.mark.parametrize(
    ("table", "expectation", "column", "key"),
    [(t, e, c, k) for t, _, e, c, k in STAGED_CASES],
)
def test_a_broken_staged_rule_fails_on_its_row(
    staged_case_results: list[CheckResult], table: str, expectation: str, column: str, key: str
) -> None:
    observed = staged_failure(staged_case_results, table, expectation, column)
    assert observed.startswith("1 of ")
    assert key in observed


@pytest.mark.parametrize(
    ("table", "expectation", "column", "key"),
    [(t, e, c, k) for t, checks in DUPLICATED.items() for e, c, k in checks],
)
def test_a_duplicate_staged_key_fails(
    staged_case_results: list[CheckResult], table: str, expectation: str, column: str, key: str
) -> None:
    observed = staged_failure(staged_case_results, table, expectation, column)
    assert observed.startswith("2 of ")
    assert key in observed


def test_empty_staged_tables_pass() -> None:
    results = validate_staged({name: frame.clear() for name, frame in staged_tables().items()})
    assert results and failures(results) == []


def test_missing_staged_tables_are_skipped() -> None:
    assert validate_staged({}) == []


def big_task_runs(rows: int, broken: Callable[[pl.DataFrame], pl.DataFrame]) -> pl.DataFrame:
    frame = pl.DataFrame(
        {
            "task_id": pl.int_range(rows, eager=True),
            "agent_id": ["a1"] * rows,
            "execution_time_s": [1.0] * rows,
            "success_pct": [100.0] * rows,
            "completed_at": [T] * rows,
        }
    )
    return broken(frame)


def test_max_rows_samples_rows_but_checks_every_key() -> None:
    # Row 7 repeats task 3; row 10 (sampled: every 5th row of 20) has a negative time.
    frame = big_task_runs(
        20,
        lambda f: f.with_columns(
            task_id=pl.when(pl.int_range(pl.len()) == 7).then(3).otherwise("task_id"),
            execution_time_s=pl.when(pl.int_range(pl.len()) == 10)
            .then(-1.0)
            .otherwise("execution_time_s"),
        ),
    )
    results = validate_staged({"fct_task_runs": frame}, max_rows=4)
    failed = {(r.expectation, r.column): r for r in failures(results)}
    assert set(failed) == {
        ("expect_column_values_to_be_unique", "task_id"),
        ("expect_column_values_to_be_between", "execution_time_s"),
    }
    assert failed["expect_column_values_to_be_unique", "task_id"].observed.startswith(
        "2 of 20 rows unexpected (exact, Polars)"
    )
    assert (
        "[GX on 1 row in 5: 4 of 20 rows]"
        in failed["expect_column_values_to_be_between", "execution_time_s"].observed
    )


def test_max_rows_above_the_row_count_validates_every_row() -> None:
    frame = big_task_runs(20, lambda f: f)
    results = validate_staged({"fct_task_runs": frame}, max_rows=100)
    assert failures(results) == []
    assert all("GX on 1 row in" not in r.observed for r in results)


# --------------------------------------------------------------------------------------------
# No false alarms on marts computed by the contract's reference
# --------------------------------------------------------------------------------------------

REFERENCE_CORE = """
INSERT INTO core.dim_agents VALUES
    ('f1', 'FinAgent', 'finance', '2026-01-05 06:00:00', 'deployed', 2.0),
    -- f2 ran a task and sent heartbeats before its deployment: agent rows without scope
    ('f2', 'FinAgent', 'finance', '2026-01-07 00:00:00', 'deployed', 1.0),
    ('o1', 'OpsAgent', 'operations', '2026-01-05 00:00:00', 'failed', 0.5);
INSERT INTO core.fct_task_runs VALUES
    -- three equal times of 0.1 s: their mean is one ulp above their maximum
    (1, 'f1', 'finance', 'finance', 'report', 0.1, 100, '2026-01-05 07:00:00'),
    (2, 'f1', 'finance', 'finance', 'report', 0.1, 100, '2026-01-05 07:10:00'),
    (3, 'f1', 'finance', 'finance', 'report', 0.1, 100, '2026-01-05 07:20:00'),
    (4, 'f1', 'finance', 'ops', 'report', 7.3, 0, '2026-01-06 12:00:00'),
    (5, 'f2', 'finance', 'finance', 'forecast', 2.0, 50, '2026-01-06 10:05:00'),
    (6, 'o1', 'operations', 'operations', 'sync', 1.0, 100, '2026-01-05 00:05:00');
INSERT INTO core.fct_heartbeats
    SELECT 'f1', TIMESTAMP '2026-01-05 06:00:00' + INTERVAL (i) MINUTE, 'ok', i % 3, 0, NULL
    FROM range(120) AS t(i);
INSERT INTO core.fct_heartbeats
    SELECT 'f2', TIMESTAMP '2026-01-06 10:00:00' + INTERVAL (i) MINUTE, 'ok', 0, 1, 'forecast'
    FROM range(30) AS t(i);
INSERT INTO core.fct_heartbeats
    SELECT 'f2', TIMESTAMP '2026-01-07 00:00:00' + INTERVAL (i) MINUTE, 'degraded', 2, 0, NULL
    FROM range(60) AS t(i);
INSERT INTO core.fct_heartbeats
    SELECT 'o1', TIMESTAMP '2026-01-05 00:00:00' + INTERVAL (i) MINUTE, 'degraded', 1, 1, NULL
    FROM range(10) AS t(i);
INSERT INTO core.fct_resource_samples VALUES
    ('f1', '2026-01-05 06:00:00', 37.5, 512.0), ('f1', '2026-01-05 06:01:00', 150.0, 600.0);
INSERT INTO core.fct_agent_errors VALUES
    ('o1', '2026-01-05 00:03:00', NULL, 'TimeoutError', 'upstream timed out');
INSERT INTO core.fct_messages VALUES
    ('m1', 1, 'f1', 'o1', 'request', '2026-01-05 09:00:00', '2026-01-05 09:00:01',
     '2026-01-05 09:00:07', 'delivered', '2026-01-05 09:00:07'),
    ('m2', 2, 'o1', 'f2', 'request', '2026-01-06 09:00:00', NULL, NULL, 'failed',
     '2026-01-06 09:00:00'),
    ('m3', 3, 'f2', 'f1', 'result', '2026-01-06 11:00:00', NULL, NULL, 'pending',
     '2026-01-06 11:00:00');
INSERT INTO core.fct_workflow_runs VALUES
    ('w1', 'close', 'f1', ['f1', 'o1'], '2026-01-05 10:00:00', '2026-01-05 10:30:00',
     'completed', 2, 1, '2026-01-05 10:30:00'),
    ('w2', 'nurture', 'f2', ['f2'], '2026-01-06 10:00:00', NULL, 'running', 0, 0,
     '2026-01-06 10:00:00'),
    ('w3', 'close', 'o1', ['o1', 'f2'], '2026-01-06 13:00:00', '2026-01-06 13:05:00',
     'failed', 1, 0, '2026-01-06 13:05:00');
INSERT INTO core.fct_business_metrics VALUES
    ('2026-01-05', 'finance', 'revenue_usd', 100.0, '2026-01-05 23:00:00', 1),
    ('2026-01-05', 'finance', 'leads_generated', 10.0, '2026-01-05 23:00:00', 2),
    ('2026-01-05', 'finance', 'conversions', 2.0, '2026-01-05 23:00:00', 3),
    ('2026-01-06', 'operations', 'predictions_total', 5.0, '2026-01-06 23:00:00', 4),
    ('2026-01-06', 'operations', 'predictions_correct', 4.0, '2026-01-06 23:00:00', 5),
    ('2026-01-06', 'operations', 'cost_savings_usd', 30.0, '2026-01-06 23:00:00', 6);
INSERT INTO core.dim_business_targets VALUES
    ('revenue_usd', '2026-01-01', '2026-12-31', 1000.0);
"""


def test_marts_of_the_reference_computation_pass_every_check() -> None:
    duckdb = pytest.importorskip("duckdb")
    from tests.reference.core_schema import create_core_tables
    from tests.reference.reference_marts import reference_marts

    con = duckdb.connect()
    create_core_tables(con)
    con.execute(REFERENCE_CORE)
    marts = reference_marts(con)
    assert marts["agent_kpis"].height and marts["alerts"].height
    core = {
        name: con.sql(f"SELECT * FROM core.{name}").pl()
        for (name,) in con.sql(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'core'"
        ).fetchall()
    }
    failed = failures(validate_marts(marts) + validate_staged(core))
    assert failed == [], [(r.table, r.column, r.observed) for r in failed]


def test_rows_naming_agents_of_an_empty_registry_fail() -> None:
    tables = staged_tables()
    failure = the_failure(
        validate_staged(
            {
                "dim_agents": tables["dim_agents"].clear(),
                "fct_agent_errors": tables["fct_agent_errors"],
            }
        )
    )
    assert (failure.table, failure.expectation, failure.column) == (
        "core.fct_agent_errors",
        IN_SET,
        "agent_id",
    )
