"""Core facts and dimensions: valid staged rows, in the columns of docs/design.md."""

from __future__ import annotations

import polars as pl

DIM_AGENTS = {
    "agent_id": pl.String,
    "agent_class": pl.String,
    "department": pl.String,
    "deployed_at": pl.Datetime("us"),
    "deployment_status": pl.String,
    "hourly_cost_usd": pl.Float64,
}
FCT_TASK_RUNS = {
    "task_id": pl.Int64,
    "agent_id": pl.String,
    "department": pl.String,
    "department_reported": pl.String,
    "task_type": pl.String,
    "execution_time_s": pl.Float64,
    "success_pct": pl.Float64,
    "completed_at": pl.Datetime("us"),
}
FCT_WORKFLOW_RUNS = {
    "workflow_id": pl.String,
    "workflow_name": pl.String,
    "initiator_agent_id": pl.String,
    "participant_agent_ids": pl.List(pl.String),
    "started_at": pl.Datetime("us"),
    "completed_at": pl.Datetime("us"),
    "status": pl.String,
    "errors": pl.Int64,
    "errors_recovered": pl.Int64,
    "updated_at": pl.Datetime("us"),
}
FCT_MESSAGES = {
    "message_id": pl.String,
    "message_row_id": pl.Int64,
    "sender_agent_id": pl.String,
    "receiver_agent_id": pl.String,
    "message_type": pl.String,
    "sent_at": pl.Datetime("us"),
    "received_at": pl.Datetime("us"),
    "responded_at": pl.Datetime("us"),
    "status": pl.String,
    "updated_at": pl.Datetime("us"),
}
FCT_BUSINESS_METRICS = {
    "metric_date": pl.Date,
    "department": pl.String,
    "metric_name": pl.String,
    "value": pl.Float64,
    "recorded_at": pl.Datetime("us"),
    "metric_row_id": pl.Int64,
}
DIM_BUSINESS_TARGETS = {
    "metric_name": pl.String,
    "period_start": pl.Date,
    "period_end": pl.Date,
    "target_value": pl.Float64,
}
FCT_HEARTBEATS = {
    "agent_id": pl.String,
    "ts": pl.Datetime("us"),
    "status": pl.String,
    "task_queue": pl.Int64,
    "message_queue": pl.Int64,
    "current_task_type": pl.String,
}
FCT_RESOURCE_SAMPLES = {
    "agent_id": pl.String,
    "ts": pl.Datetime("us"),
    "cpu_pct": pl.Float64,
    "memory_mb": pl.Float64,
}
FCT_AGENT_ERRORS = {
    "agent_id": pl.String,
    "ts": pl.Datetime("us"),
    "task_type": pl.String,
    "error_type": pl.String,
    "message": pl.String,
}
FCT_OTHER_EVENTS = {"agent_id": pl.String, "event": pl.String, "ts": pl.Datetime("us")}

CORE_SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    "dim_agents": DIM_AGENTS,
    "fct_task_runs": FCT_TASK_RUNS,
    "fct_workflow_runs": FCT_WORKFLOW_RUNS,
    "fct_messages": FCT_MESSAGES,
    "fct_business_metrics": FCT_BUSINESS_METRICS,
    "dim_business_targets": DIM_BUSINESS_TARGETS,
    "fct_heartbeats": FCT_HEARTBEATS,
    "fct_resource_samples": FCT_RESOURCE_SAMPLES,
    "fct_agent_errors": FCT_AGENT_ERRORS,
    "fct_other_events": FCT_OTHER_EVENTS,
}

EVENT_TABLES = {
    "heartbeat": "fct_heartbeats",
    "resource": "fct_resource_samples",
    "error": "fct_agent_errors",
}
EVENT_KEY = ["agent_id", "event", "ts"]


def _conform(frame: pl.LazyFrame, schema: dict[str, pl.DataType]) -> pl.LazyFrame:
    return frame.select(pl.col(name).cast(dtype) for name, dtype in schema.items())


def empty(table: str) -> pl.LazyFrame:
    """An empty frame with the columns of a core table."""
    return pl.LazyFrame(schema=CORE_SCHEMAS[table])


def dim_agents(valid: pl.LazyFrame) -> pl.LazyFrame:
    """The registry, one row per agent."""
    return _conform(
        valid.with_columns(
            pl.col("deployed_at_utc").alias("deployed_at"),
            pl.col("hourly_cost_usd_value").alias("hourly_cost_usd"),
        ),
        DIM_AGENTS,
    )


def task_facts(valid: pl.LazyFrame, agents: pl.LazyFrame) -> pl.LazyFrame:
    """Finished tasks, one row per agent_performance row, with the registry's department
    (the row's own department, which can be stale when an agent moved, is kept as reported)."""
    return _conform(
        valid.rename({"department": "department_reported"}).join(
            agents.select("agent_id", "department"), on="agent_id", how="left"
        ),
        FCT_TASK_RUNS,
    )


def workflow_facts(valid: pl.LazyFrame) -> pl.LazyFrame:
    """Workflow runs, one row per workflow_id."""
    return _conform(
        valid.with_columns(
            pl.col("participants").alias("participant_agent_ids"),
            pl.col("started_at_utc").alias("started_at"),
            pl.col("completed_at_utc").alias("completed_at"),
            pl.col("updated_at_utc").alias("updated_at"),
            pl.col("errors_count").alias("errors"),
            pl.col("errors_recovered_count").alias("errors_recovered"),
        ),
        FCT_WORKFLOW_RUNS,
    )


def message_facts(valid: pl.LazyFrame) -> pl.LazyFrame:
    """Messages, one row per message_id."""
    return _conform(
        valid.with_columns(
            pl.col("sent_at_utc").alias("sent_at"),
            pl.col("received_at_utc").alias("received_at"),
            pl.col("responded_at_utc").alias("responded_at"),
            pl.col("updated_at_utc").alias("updated_at"),
        ),
        FCT_MESSAGES,
    )


def latest_versions(frame: pl.LazyFrame, key: str) -> pl.LazyFrame:
    """One row per `key`: the row with the latest `updated_at` (rows ARE updated at the source;
    of equal `updated_at`, the later row in the frame)."""
    return (
        frame.with_row_index("_order")
        .group_by(key)
        .agg(pl.all().sort_by("updated_at", "_order", nulls_last=False).last())
        .drop("_order")
    )


def business_metric_versions(valid: pl.LazyFrame) -> pl.LazyFrame:
    """Every version of every business figure, typed (restatements not yet resolved)."""
    return _conform(
        valid.with_columns(
            pl.col("metric_day").alias("metric_date"),
            pl.col("metric_value").alias("value"),
            pl.col("recorded_at_utc").alias("recorded_at"),
        ),
        FCT_BUSINESS_METRICS,
    )


def resolve_restatements(versions: pl.LazyFrame) -> pl.LazyFrame:
    """One figure per (metric_date, department, metric_name): the latest `recorded_at` wins,
    ties go to the highest row id (the source contract's rule)."""
    return (
        versions.group_by("metric_date", "department", "metric_name")
        .agg(pl.all().sort_by("recorded_at", "metric_row_id").last())
        .select(list(FCT_BUSINESS_METRICS))
    )


def business_targets(valid: pl.LazyFrame) -> pl.LazyFrame:
    """Targets, one row per business_targets row."""
    return _conform(
        valid.with_columns(
            pl.col("period_start_day").alias("period_start"),
            pl.col("period_end_day").alias("period_end"),
            pl.col("target_value_usd").alias("target_value"),
        ),
        DIM_BUSINESS_TARGETS,
    )


def event_facts(events: pl.LazyFrame) -> dict[str, pl.LazyFrame]:
    """Valid log events split into their core tables; events of other types go to
    `fct_other_events` (counted, and used by no KPI). Each row keeps its `read_order`, by
    which the load keeps the first copy of an event delivered twice (see `EVENT_KEY`)."""
    typed = events.with_columns(pl.col("ts_utc").alias("ts"))

    def conform(frame: pl.LazyFrame, table: str) -> pl.LazyFrame:
        schema = CORE_SCHEMAS[table]
        return frame.select(
            *[pl.col(name).cast(dtype) for name, dtype in schema.items()],
            pl.col("read_order").cast(pl.Int64),
        )

    facts = {
        table: conform(typed.filter(pl.col("event") == event), table)
        for event, table in EVENT_TABLES.items()
    }
    facts["fct_other_events"] = conform(
        typed.filter(~pl.col("event").is_in(list(EVENT_TABLES))), "fct_other_events"
    )
    return facts
