"""The row rules of `contract/sources.md` ("What counts as valid"), source by source.

Each test starts from a row that is valid, changes the one value that matters, and checks the
rule the row is quarantined under (or that it passes). The run starts at RUN_STARTED_AT; the
registry knows the agents `a1` and `a2`.
"""

from datetime import datetime, timedelta

import polars as pl
import pytest

from flows.extract import LOG_LINE_COLUMNS
from quality.rules import (
    Rule,
    RuleContext,
    agents_rules,
    business_metric_rules,
    business_target_rules,
    log_event_rules,
    message_rules,
    split_by_rules,
    task_rules,
    workflow_rules,
)
from transforms.staging import (
    stage_agents,
    stage_business_metrics,
    stage_business_targets,
    stage_log_events,
    stage_messages,
    stage_tasks,
    stage_workflows,
)

RUN_STARTED_AT = datetime(2026, 11, 23, 12, 0, 0)
CTX = RuleContext(RUN_STARTED_AT, pl.Series(["a1", "a2"], dtype=pl.String))

# 12:05:00 is exactly 5 minutes after the run started (still valid); one second more is future.
AT_TOLERANCE = "2026-11-23 12:05:00"
PAST_TOLERANCE = "2026-11-23 12:05:01"


def _judge(stage, rules: list[Rule], row: dict[str, object], schema: dict) -> str | None:  # type: ignore[no-untyped-def]
    """The rule one row is quarantined under, or None when it is valid."""
    raw = pl.DataFrame([row], schema=schema, orient="row")
    staged = stage(raw.lazy()).collect()
    valid, rejected = split_by_rules(staged, rules)
    assert valid.height + rejected.height == 1
    return None if valid.height else rejected["rule"][0]


def _text_schema(row: dict[str, object]) -> dict[str, pl.DataType]:
    return {column: pl.String for column in row}


# ---------------------------------------------------------------------------------------------
# split_by_rules itself


def test_a_row_breaking_several_rules_gets_the_first_one_listed() -> None:
    rules = [
        Rule("first", "x <= 10", pl.col("x") > 10),
        Rule("second", "x <= 1", pl.col("x") > 1),
    ]
    frame = pl.DataFrame({"x": [0, 5, 20]})
    valid, rejected = split_by_rules(frame, rules)
    assert valid["x"].to_list() == [0]
    assert rejected.select("x", "rule", "rule_check").rows() == [
        (5, "second", "x <= 1"),
        (20, "first", "x <= 10"),
    ]


def test_valid_rows_keep_their_columns_and_lose_no_row() -> None:
    frame = pl.DataFrame({"x": [1, 2, 3], "y": ["a", "b", "c"]})
    valid, rejected = split_by_rules(frame, [Rule("big", "x <= 2", pl.col("x") > 2)])
    assert valid.columns == ["x", "y"]
    assert valid.rows() == [(1, "a"), (2, "b")]
    assert rejected["rule"].to_list() == ["big"]


# ---------------------------------------------------------------------------------------------
# agents

AGENT = {
    "agent_id": "a1",
    "agent_class": "FinancialAnalysisAgent",
    "department": "finance",
    "deployed_at": "2026-11-01 09:00:00",
    "deployment_status": "deployed",
    "hourly_cost_usd": "1.25",
}


def _agent_rule(**changes: object) -> str | None:
    row = {**AGENT, **changes}
    return _judge(stage_agents, agents_rules(CTX), row, _text_schema(row))


def test_valid_agent_passes() -> None:
    assert _agent_rule() is None


@pytest.mark.parametrize("status", ["deployed", "failed", "retired"])
def test_agent_with_listed_deployment_status_passes(status: str) -> None:
    assert _agent_rule(deployment_status=status) is None


def test_agent_with_unlisted_deployment_status_is_unknown_status() -> None:
    assert _agent_rule(deployment_status="pending") == "unknown_status"


def test_agent_with_unparseable_deployed_at() -> None:
    assert _agent_rule(deployed_at="yesterday") == "unparseable_timestamp"


def test_agent_deployed_more_than_5_minutes_after_run_start_is_future() -> None:
    assert _agent_rule(deployed_at=PAST_TOLERANCE) == "future_timestamp"


def test_agent_deployed_exactly_5_minutes_after_run_start_is_valid() -> None:
    assert _agent_rule(deployed_at=AT_TOLERANCE) is None


def test_agent_with_non_numeric_hourly_cost_is_wrong_type() -> None:
    assert _agent_rule(hourly_cost_usd="cheap") == "wrong_type"


# ---------------------------------------------------------------------------------------------
# agent_performance

TASK = {
    "id": "1",
    "agent_id": "a1",
    "department": "finance",
    "task_type": "forecast",
    "execution_time": "2.5",
    "success_rate": "100",
    "timestamp": "2026-11-23 11:00:00",
}


def _task_rule(**changes: object) -> str | None:
    row = {**TASK, **changes}
    return _judge(stage_tasks, task_rules(CTX), row, _text_schema(row))


def test_valid_task_passes() -> None:
    assert _task_rule() is None


def test_task_with_zero_execution_time_is_valid() -> None:
    assert _task_rule(execution_time="0") is None


def test_task_with_negative_execution_time_is_out_of_range() -> None:
    assert _task_rule(execution_time="-0.001") == "out_of_range"


def test_task_with_null_execution_time_is_missing_field() -> None:
    assert _task_rule(execution_time=None) == "missing_field"


@pytest.mark.parametrize("text", ["fast", "NaN", "inf"])
def test_task_with_non_number_execution_time_is_wrong_type(text: str) -> None:
    assert _task_rule(execution_time=text) == "wrong_type"


@pytest.mark.parametrize("pct", ["0", "100", "50", "99.9"])
def test_task_with_success_rate_in_0_to_100_is_valid(pct: str) -> None:
    assert _task_rule(success_rate=pct) is None


@pytest.mark.parametrize("pct", ["-0.1", "100.1", "150"])
def test_task_with_success_rate_outside_0_to_100_is_out_of_range(pct: str) -> None:
    assert _task_rule(success_rate=pct) == "out_of_range"


def test_task_with_null_success_rate_is_missing_field() -> None:
    assert _task_rule(success_rate=None) == "missing_field"


def test_task_with_non_numeric_success_rate_is_wrong_type() -> None:
    assert _task_rule(success_rate="high") == "wrong_type"


def test_task_with_unparseable_timestamp() -> None:
    assert _task_rule(timestamp="2026-11-31 10:00:00") == "unparseable_timestamp"


def test_task_more_than_5_minutes_after_run_start_is_future() -> None:
    assert _task_rule(timestamp=PAST_TOLERANCE) == "future_timestamp"


def test_task_exactly_5_minutes_after_run_start_is_valid() -> None:
    assert _task_rule(timestamp=AT_TOLERANCE) is None


def test_task_future_check_uses_the_utc_time_not_the_local_text() -> None:
    # 14:00 at UTC+2 is 12:00 UTC (valid); 11:00 at UTC-2 is 13:00 UTC (an hour in the future).
    assert _task_rule(timestamp="2026-11-23T14:00:00+02:00") is None
    assert _task_rule(timestamp="2026-11-23T11:00:00-02:00") == "future_timestamp"


def test_task_of_unknown_agent() -> None:
    assert _task_rule(agent_id="ghost-01") == "unknown_agent"


def test_task_without_agent_is_missing_field() -> None:
    assert _task_rule(agent_id=None) == "missing_field"


def test_unknown_agent_is_checked_last_so_a_row_waiting_for_the_registry_is_otherwise_valid() -> (
    None
):
    # A row naming an unknown agent waits in quarantine and is loaded once the registry knows
    # the agent: it must be quarantined for unknown_agent only if nothing else is wrong with it.
    assert _task_rule(agent_id="ghost-01", execution_time="-1") == "out_of_range"
    assert _task_rule(agent_id="ghost-01", timestamp=PAST_TOLERANCE) == "future_timestamp"


def test_task_breaking_two_rules_gets_the_first_listed() -> None:
    # unparseable timestamp comes before out_of_range in the task rules
    assert _task_rule(timestamp="later", success_rate="120") == "unparseable_timestamp"


# ---------------------------------------------------------------------------------------------
# workflow_executions

WORKFLOW = {
    "workflow_id": "w1",
    "workflow_name": "quarterly_close",
    "initiator_agent_id": "a1",
    "participant_agent_ids": '["a1", "a2"]',
    "started_at": "2026-11-23 10:00:00",
    "completed_at": "2026-11-23 10:30:00",
    "status": "completed",
    "errors": "2",
    "errors_recovered": "1",
    "updated_at": "2026-11-23 10:30:00",
}


def _workflow_rule(**changes: object) -> str | None:
    row = {**WORKFLOW, **changes}
    return _judge(stage_workflows, workflow_rules(CTX), row, _text_schema(row))


def test_valid_workflow_passes() -> None:
    assert _workflow_rule() is None


def test_running_workflow_without_completed_at_is_valid() -> None:
    assert _workflow_rule(status="running", completed_at=None) is None


@pytest.mark.parametrize("status", ["running", "completed", "failed"])
def test_workflow_with_listed_status_passes(status: str) -> None:
    assert _workflow_rule(status=status) is None


def test_workflow_with_unlisted_status_is_unknown_status() -> None:
    assert _workflow_rule(status="cancelled") == "unknown_status"


def test_workflow_completed_before_it_started_is_time_order() -> None:
    assert _workflow_rule(completed_at="2026-11-23 09:59:59") == "time_order"


def test_workflow_completed_when_it_started_is_valid() -> None:
    assert _workflow_rule(completed_at="2026-11-23 10:00:00") is None


@pytest.mark.parametrize("column", ["started_at", "completed_at", "updated_at"])
def test_workflow_with_unparseable_timestamp(column: str) -> None:
    assert _workflow_rule(**{column: "soon"}) == "unparseable_timestamp"


@pytest.mark.parametrize("column", ["completed_at", "updated_at"])
def test_workflow_with_future_timestamp(column: str) -> None:
    assert _workflow_rule(**{column: PAST_TOLERANCE}) == "future_timestamp"


def test_workflow_exactly_5_minutes_after_run_start_is_valid() -> None:
    assert _workflow_rule(completed_at=AT_TOLERANCE, updated_at=AT_TOLERANCE) is None


@pytest.mark.parametrize(
    "text", ['{"a1": true}', '"a1"', "a1,a2", '["a1", 2]', '["a1", null]', '[["a1"]]']
)
def test_workflow_whose_participants_are_not_a_json_array_of_strings(text: str) -> None:
    assert _workflow_rule(participant_agent_ids=text) == "bad_participants"


def test_workflow_with_errors_recovered_equal_to_errors_is_valid() -> None:
    assert _workflow_rule(errors="2", errors_recovered="2") is None


def test_workflow_with_zero_errors_is_valid() -> None:
    assert _workflow_rule(errors="0", errors_recovered="0") is None


def test_workflow_recovering_more_errors_than_it_saw_is_out_of_range() -> None:
    assert _workflow_rule(errors="2", errors_recovered="3") == "out_of_range"


def test_workflow_with_negative_errors_recovered_is_out_of_range() -> None:
    assert _workflow_rule(errors="2", errors_recovered="-1") == "out_of_range"


def test_workflow_with_non_integer_errors_is_wrong_type() -> None:
    assert _workflow_rule(errors="two") == "wrong_type"


def test_workflow_with_unknown_initiator() -> None:
    assert _workflow_rule(initiator_agent_id="ghost-01") == "unknown_agent"


def test_workflow_with_unknown_participant() -> None:
    assert _workflow_rule(participant_agent_ids='["a1", "ghost-01"]') == "unknown_agent"


# ---------------------------------------------------------------------------------------------
# agent_communications

MESSAGE = {
    "id": "1",
    "message_id": "m1",
    "sender_agent_id": "a1",
    "receiver_agent_id": "a2",
    "message_type": "request",
    "sent_at": "2026-11-23 10:00:00",
    "received_at": "2026-11-23 10:00:01",
    "responded_at": "2026-11-23 10:00:03",
    "status": "delivered",
    "updated_at": "2026-11-23 10:00:03",
}


def _message_rule(**changes: object) -> str | None:
    row = {**MESSAGE, **changes}
    return _judge(stage_messages, message_rules(CTX), row, _text_schema(row))


def test_valid_message_passes() -> None:
    assert _message_rule() is None


def test_pending_message_without_received_and_responded_is_valid() -> None:
    assert _message_rule(status="pending", received_at=None, responded_at=None) is None


@pytest.mark.parametrize("status", ["pending", "delivered", "failed"])
def test_message_with_listed_status_passes(status: str) -> None:
    assert _message_rule(status=status) is None


def test_message_with_unlisted_status_is_unknown_status() -> None:
    assert _message_rule(status="lost") == "unknown_status"


def test_message_received_before_it_was_sent_is_time_order() -> None:
    assert _message_rule(received_at="2026-11-23 09:59:59") == "time_order"


def test_message_received_when_it_was_sent_is_valid() -> None:
    assert _message_rule(received_at="2026-11-23 10:00:00") is None


def test_message_responded_before_it_was_received_is_time_order() -> None:
    assert _message_rule(responded_at="2026-11-23 10:00:00.5") == "time_order"


def test_message_responded_when_it_was_received_is_valid() -> None:
    assert _message_rule(responded_at="2026-11-23 10:00:01") is None


@pytest.mark.parametrize("column", ["sent_at", "received_at", "responded_at", "updated_at"])
def test_message_with_unparseable_timestamp(column: str) -> None:
    assert _message_rule(**{column: "2026-11-23 10:00"}) == "unparseable_timestamp"


@pytest.mark.parametrize("column", ["responded_at", "updated_at"])
def test_message_with_future_timestamp(column: str) -> None:
    assert _message_rule(**{column: PAST_TOLERANCE}) == "future_timestamp"


def test_message_of_unknown_sender() -> None:
    assert _message_rule(sender_agent_id="ghost-01") == "unknown_agent"


def test_message_to_unknown_receiver() -> None:
    assert _message_rule(receiver_agent_id="ghost-01") == "unknown_agent"


# ---------------------------------------------------------------------------------------------
# business_metrics

METRIC = {
    "id": "1",
    "metric_date": "2026-11-22",
    "department": "marketing",
    "metric_name": "revenue_usd",
    "value": "1250.5",
    "recorded_at": "2026-11-23 01:00:00",
}


def _metric_rule(**changes: object) -> str | None:
    row = {**METRIC, **changes}
    return _judge(stage_business_metrics, business_metric_rules(CTX), row, _text_schema(row))


def test_valid_business_metric_passes() -> None:
    assert _metric_rule() is None


def test_business_metric_with_unlisted_name_is_kept() -> None:
    # "Other names may appear and must be kept, not dropped."
    assert _metric_rule(metric_name="net_promoter_score") is None


def test_business_metric_with_null_value_is_missing_field() -> None:
    assert _metric_rule(value=None) == "missing_field"


def test_business_metric_with_non_numeric_value_is_wrong_type() -> None:
    assert _metric_rule(value="a lot") == "wrong_type"


def test_business_metric_with_unparseable_date() -> None:
    assert _metric_rule(metric_date="22/11/2026") == "unparseable_timestamp"


def test_business_metric_for_the_day_the_run_started_is_valid() -> None:
    assert _metric_rule(metric_date="2026-11-23", recorded_at="2026-11-23 11:00:00") is None


def test_business_metric_for_a_later_day_is_future() -> None:
    # 24 Nov begins 12 hours after the run started (23 Nov 12:00)
    assert _metric_rule(metric_date="2026-11-24") == "future_timestamp"


def test_business_metric_recorded_in_the_future() -> None:
    assert _metric_rule(recorded_at=PAST_TOLERANCE) == "future_timestamp"


def test_business_metric_recorded_exactly_5_minutes_after_run_start_is_valid() -> None:
    assert _metric_rule(recorded_at=AT_TOLERANCE) is None


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("seo_score", "0", None),
        ("seo_score", "100", None),
        ("seo_score", "100.5", "out_of_range"),
        ("seo_score", "-1", "out_of_range"),
        ("engagement_rate", "0", None),
        ("engagement_rate", "1", None),
        ("engagement_rate", "1.01", "out_of_range"),
        ("engagement_rate", "-0.01", "out_of_range"),
    ],
)
def test_business_metric_scores_within_their_ranges(
    name: str, value: str, expected: str | None
) -> None:
    # seo_score is 0–100 and engagement_rate 0–1 (contract: metric names)
    assert _metric_rule(metric_name=name, value=value) == expected


# ---------------------------------------------------------------------------------------------
# business_targets

TARGET = {
    "metric_name": "revenue_usd",
    "period_start": "2026-01-01",
    "period_end": "2026-12-31",
    "target_value": "60000",
}


def _target_rule(**changes: object) -> str | None:
    row = {**TARGET, **changes}
    return _judge(stage_business_targets, business_target_rules(CTX), row, _text_schema(row))


def test_valid_business_target_passes() -> None:
    assert _target_rule() is None


def test_business_target_for_a_future_period_is_valid() -> None:
    # A target is set ahead of its period: the future rule is about things that happened.
    assert _target_rule(period_start="2027-01-01", period_end="2027-12-31") is None


def test_business_target_with_unparseable_date() -> None:
    assert _target_rule(period_start="Q1") == "unparseable_timestamp"


def test_business_target_with_non_numeric_value_is_wrong_type() -> None:
    assert _target_rule(target_value="lots") == "wrong_type"


# ---------------------------------------------------------------------------------------------
# log events (as the extract decodes them: queues Int64, cpu and memory Float64)

LOG_SCHEMA: dict[str, pl.DataType] = LOG_LINE_COLUMNS
HEARTBEAT = {
    "file": "2026-11-23/a1-11.jsonl",
    "line_no": 1,
    "ts": "2026-11-23T11:05:00.120Z",
    "agent_id": "a1",
    "event": "heartbeat",
    "status": "ok",
    "task_queue": 3,
    "message_queue": 1,
    "current_task_type": "report_generation",
}
RESOURCE = {
    "file": "2026-11-23/a1-11.jsonl",
    "line_no": 2,
    "ts": "2026-11-23T11:05:02Z",
    "agent_id": "a1",
    "event": "resource",
    "cpu_pct": 37.5,
    "memory_mb": 512.25,
}
ERROR = {
    "file": "2026-11-23/a1-11.jsonl",
    "line_no": 3,
    "ts": "2026-11-23T11:05:03+00:00",
    "agent_id": "a1",
    "event": "error",
    "task_type": "report_generation",
    "error_type": "TimeoutError",
    "message": "upstream API timed out",
}


def _event_rule(base: dict[str, object], **changes: object) -> str | None:
    row = {column: None for column in LOG_SCHEMA} | base | changes
    return _judge(stage_log_events, log_event_rules(CTX), row, LOG_SCHEMA)


@pytest.mark.parametrize("event", [HEARTBEAT, RESOURCE, ERROR])
def test_valid_events_pass(event: dict[str, object]) -> None:
    assert _event_rule(event) is None


def test_heartbeat_idle_without_current_task_type_is_valid() -> None:
    assert _event_rule(HEARTBEAT, current_task_type=None) is None


def test_error_event_without_task_type_is_valid() -> None:
    assert _event_rule(ERROR, task_type=None) is None


def test_event_of_another_type_is_valid() -> None:
    # Other event types are counted and ignored, not bad input.
    other = {"file": "f", "line_no": 4, "ts": "2026-11-23T11:06:00Z", "agent_id": "a1"}
    assert _event_rule(other, event="deployment_started", status="whatever") is None


def test_line_that_is_not_json() -> None:
    line = {"file": "f", "line_no": 9, "parse_error": "not_json"}
    assert _event_rule(line) == "not_json"


@pytest.mark.parametrize("field", ["ts", "agent_id", "event"])
def test_event_lacking_a_required_field_is_missing_field(field: str) -> None:
    assert _event_rule(HEARTBEAT, **{field: None}) == "missing_field"


def test_event_with_a_value_of_the_wrong_type() -> None:
    # The extract marks e.g. `"task_queue": "three"` while decoding.
    assert _event_rule(HEARTBEAT, task_queue=None, parse_error="wrong_type:task_queue") == (
        "wrong_type"
    )


@pytest.mark.parametrize("field", ["status", "task_queue", "message_queue"])
def test_heartbeat_lacking_a_heartbeat_field_is_missing_field(field: str) -> None:
    assert _event_rule(HEARTBEAT, **{field: None}) == "missing_field"


@pytest.mark.parametrize("field", ["cpu_pct", "memory_mb"])
def test_resource_sample_lacking_a_value_is_missing_field(field: str) -> None:
    assert _event_rule(RESOURCE, **{field: None}) == "missing_field"


def test_heartbeat_with_zero_queues_is_valid() -> None:
    assert _event_rule(HEARTBEAT, task_queue=0, message_queue=0) is None


@pytest.mark.parametrize("field", ["task_queue", "message_queue"])
def test_heartbeat_with_negative_queue_is_out_of_range(field: str) -> None:
    assert _event_rule(HEARTBEAT, **{field: -1}) == "out_of_range"


def test_resource_sample_at_zero_and_above_100_pct_cpu_is_valid() -> None:
    # cpu_pct is per core and may exceed 100 on several cores.
    assert _event_rule(RESOURCE, cpu_pct=0.0, memory_mb=0.0) is None
    assert _event_rule(RESOURCE, cpu_pct=350.0) is None


@pytest.mark.parametrize("field", ["cpu_pct", "memory_mb"])
def test_resource_sample_with_negative_value_is_out_of_range(field: str) -> None:
    assert _event_rule(RESOURCE, **{field: -0.5}) == "out_of_range"


@pytest.mark.parametrize("status", ["ok", "degraded"])
def test_heartbeat_with_listed_status_passes(status: str) -> None:
    assert _event_rule(HEARTBEAT, status=status) is None


def test_heartbeat_with_unlisted_status_is_unknown_status() -> None:
    assert _event_rule(HEARTBEAT, status="down") == "unknown_status"


def test_event_with_unparseable_ts() -> None:
    assert _event_rule(ERROR, ts="1700000000") == "unparseable_timestamp"


def test_event_more_than_5_minutes_after_run_start_is_future() -> None:
    assert _event_rule(HEARTBEAT, ts="2026-11-23T12:05:00.000001Z") == "future_timestamp"


def test_event_exactly_5_minutes_after_run_start_is_valid() -> None:
    assert _event_rule(HEARTBEAT, ts="2026-11-23T12:05:00Z") is None
    # 13:05 at UTC+1 is 12:05 UTC
    assert _event_rule(HEARTBEAT, ts="2026-11-23T13:05:00+01:00") is None


def test_event_of_unknown_agent() -> None:
    assert _event_rule(RESOURCE, agent_id="ghost-01") == "unknown_agent"


def test_future_event_of_unknown_agent_is_future_first() -> None:
    assert _event_rule(HEARTBEAT, agent_id="ghost-01", ts=PAST_TOLERANCE) == "future_timestamp"


def test_registry_learning_the_agent_makes_its_waiting_row_valid() -> None:
    # The same row, judged again after the registry got to know the agent, passes.
    row = {column: None for column in LOG_SCHEMA} | HEARTBEAT | {"agent_id": "a3"}
    staged = stage_log_events(pl.DataFrame([row], schema=LOG_SCHEMA, orient="row").lazy())
    later = RuleContext(RUN_STARTED_AT + timedelta(hours=1), pl.Series(["a1", "a2", "a3"]))
    _, rejected = split_by_rules(staged.collect(), log_event_rules(CTX))
    valid, _ = split_by_rules(staged.collect(), log_event_rules(later))
    assert rejected["rule"].to_list() == ["unknown_agent"]
    assert valid.height == 1


def test_a_log_line_that_is_not_utf8_is_not_json_and_the_lines_around_it_are_read() -> None:
    from flows import extract

    good = b'{"ts": "2026-11-01 00:00:00", "agent_id": "a", "event": "heartbeat"}\n'
    bad = b'{"ts": "2026-11-01 00:00:01", "agent_id": "a\xff", "event": "heartbeat"}\n'
    decoded = extract._decode_batch([("f.jsonl", good + bad + good, 3)])
    assert decoded["parse_error"].to_list() == [None, "not_json", None]
    assert decoded["agent_id"].to_list() == ["a", None, "a"]


def _decoded_both_ways(lines: list[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The lines decoded in one batch as a run reads them (the strict decoder first), and
    line by line."""
    from flows import extract

    text = "".join(f"{line}\n" for line in lines).encode()
    batch = extract._decode_batch([("f.jsonl", text, len(lines))])
    by_line = extract.decode_log_lines(
        ("f.jsonl", n, line.encode()) for n, line in enumerate(lines, start=1)
    )
    return batch, by_line


LINE_START = '{"ts": "2026-11-01 00:00:00", "agent_id": "a1", '


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ('"event": "error", "task_type": {"nested": 1}', "wrong_type:task_type"),
        ('"event": "error", "error_type": ["TimeoutError"]', "wrong_type:error_type"),
        ('"event": "error", "message": true', "wrong_type:message"),
        ('"event": "heartbeat", "status": false, "task_queue": 1, "message_queue": 0',
         "wrong_type:status"),
        ('"event": {"kind": "heartbeat"}', "wrong_type:event"),
        # The same text as a string is text, of the right type.
        ('"event": "error", "message": "true", "task_type": "{\\"nested\\": 1}"', None),
    ],
)  # fmt: skip
def test_an_object_array_or_boolean_in_a_text_field_is_the_wrong_type_whoever_decodes_it(
    fields: str, error: str | None
) -> None:
    # Polars' strict decoder would give such a value as its text: the line goes to the
    # line-by-line decoder, alone in its batch as beside a line neither accepts.
    line = LINE_START + fields + "}"
    alone, by_line = _decoded_both_ways([line])
    assert alone["parse_error"].to_list() == by_line["parse_error"].to_list() == [error]
    with_bad, _ = _decoded_both_ways([line, "not json"])
    assert with_bad["parse_error"].to_list() == [error, "not_json"]
    if error is None:
        assert alone["message"].to_list() == ["true"]
        assert alone["task_type"].to_list() == ['{"nested": 1}']


def test_fields_of_another_event_type_are_ignored_whatever_their_type() -> None:
    # "Unknown extra fields are ignored": a field another event type has is one of them.
    lines = [
        LINE_START + '"event": "task_enqueued", "task_queue": "reports"}',
        LINE_START + '"event": "error", "error_type": "OOM", "cpu_pct": "n/a"}',
        LINE_START + '"event": "resource", "cpu_pct": 37.5, "memory_mb": 512.25, '
        '"message_queue": "inbox", "status": {"a": 1}}',
        LINE_START + '"event": "heartbeat", "status": "ok", "task_queue": 3, '
        '"message_queue": 1, "cpu_pct": 3.0, "message": "hello"}',
    ]
    decoded, by_line = _decoded_both_ways(lines)
    assert decoded["parse_error"].to_list() == [None] * 4
    # A value of the wrong type is NULL; one of the right type is kept, and unused.
    assert decoded["task_queue"].to_list() == [None, None, None, 3]
    assert decoded["cpu_pct"].to_list() == [None, None, 37.5, 3.0]
    assert decoded["message_queue"].to_list() == [None, None, None, 1]
    assert decoded["status"].to_list() == [None, None, None, "ok"]
    assert decoded["message"].to_list() == [None, None, None, "hello"]
    assert decoded.equals(by_line)
    # The strict decoder alone (the line of the right types) gives the same.
    strict, _ = _decoded_both_ways(lines[3:])
    assert strict.equals(by_line.slice(3).with_columns(line_no=pl.lit(1, pl.Int64)))
    staged = stage_log_events(decoded.lazy()).collect()
    _, rejected = split_by_rules(staged, log_event_rules(CTX))
    assert rejected.is_empty()
