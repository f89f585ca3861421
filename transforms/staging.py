"""Staging: raw text as read from the sources, parsed and typed.

Every staging function takes the raw rows exactly as extracted (every column text, named as in
`contract/sources.md`) and adds typed columns named as in the core layer, keeping the raw
columns beside them so that the row rules in `quality/rules.py` can tell a missing value from
one of the wrong type. Nothing is dropped here: splitting valid rows from bad input is the
rules' job, and the core functions below then keep only the core columns.
"""

from __future__ import annotations

import polars as pl


def parse_timestamp(text: pl.Expr) -> pl.Expr:
    """ISO-8601 text to a naive UTC `Datetime("us")`; NULL where the text does not parse.

    Accepts what the source contract allows: a space or `T` between date and time, optional
    fractional seconds (truncated to microseconds), and an optional `Z` or `+HH:MM` offset
    (also `+HHMM` and `+HH`, as PostgreSQL prints them). A value with an offset is converted to
    UTC. Two exact formats on a normalised text are several times faster than a regular
    expression per value (docs/benchmarks.md has the figures).
    """
    normalised = text.str.replace("T", " ", literal=True).str.strip_suffix("Z")
    naive = normalised.str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M:%S%.f", strict=False)
    with_offset = normalised.str.strptime(
        pl.Datetime("us", "UTC"), "%Y-%m-%d %H:%M:%S%.f%#z", strict=False
    ).dt.replace_time_zone(None)
    return pl.coalesce(naive, with_offset)


def parse_date(text: pl.Expr) -> pl.Expr:
    """A DATE column's text (`YYYY-MM-DD`, or a timestamp whose date is taken) to `pl.Date`."""
    value = text.str.strip_chars()
    return (
        pl.when(value.str.len_bytes() == 10)
        .then(value.str.strptime(pl.Date, "%Y-%m-%d", strict=False))
        .otherwise(parse_timestamp(value).dt.date())
    )


def parse_float(text: pl.Expr) -> pl.Expr:
    """Numeric text to Float64; NULL where it is not a finite number."""
    number = text.str.strip_chars().cast(pl.Float64, strict=False)
    return pl.when(number.is_finite()).then(number).otherwise(None)


def parse_int(text: pl.Expr) -> pl.Expr:
    """Integer text to Int64; NULL where it is not an integer."""
    return text.str.strip_chars().cast(pl.Int64, strict=False)


def stage_agents(raw: pl.LazyFrame) -> pl.LazyFrame:
    """The registry, one row per `agents` row, typed."""
    return raw.with_columns(
        parse_timestamp(pl.col("deployed_at")).alias("deployed_at_utc"),
        parse_float(pl.col("hourly_cost_usd")).alias("hourly_cost_usd_value"),
    )


def stage_tasks(raw: pl.LazyFrame) -> pl.LazyFrame:
    """Finished tasks, one row per `agent_performance` row, typed."""
    return raw.with_columns(
        parse_int(pl.col("id")).alias("task_id"),
        parse_float(pl.col("execution_time")).alias("execution_time_s"),
        parse_float(pl.col("success_rate")).alias("success_pct"),
        parse_timestamp(pl.col("timestamp")).alias("completed_at"),
    )


def parse_participants(text: pl.Expr) -> pl.Expr:
    """`participant_agent_ids` JSON text to a list of distinct agent ids in order of first
    appearance; NULL where the text is not a JSON array of strings."""
    value = text.str.strip_chars()
    # A JSON array of strings, by JSON's own grammar (escapes and control characters
    # included), so that decoding can never fail on a row that passed this check.
    string = r'"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"'
    is_array_of_strings = value.str.contains(rf"^\[\s*(?:{string}\s*(?:,\s*{string}\s*)*)?\]$")
    decoded = (
        pl.when(is_array_of_strings)
        .then(value)
        .otherwise(pl.lit("[]"))
        .str.json_decode(pl.List(pl.String))
        .list.unique(maintain_order=True)
    )
    return pl.when(is_array_of_strings).then(decoded).otherwise(None)


def stage_workflows(raw: pl.LazyFrame) -> pl.LazyFrame:
    """Workflow runs, one row per `workflow_executions` row, typed."""
    return raw.with_columns(
        parse_participants(pl.col("participant_agent_ids")).alias("participants"),
        parse_timestamp(pl.col("started_at")).alias("started_at_utc"),
        parse_timestamp(pl.col("completed_at")).alias("completed_at_utc"),
        parse_timestamp(pl.col("updated_at")).alias("updated_at_utc"),
        parse_int(pl.col("errors")).alias("errors_count"),
        parse_int(pl.col("errors_recovered")).alias("errors_recovered_count"),
    )


def stage_messages(raw: pl.LazyFrame) -> pl.LazyFrame:
    """Inter-agent messages, one row per `agent_communications` row, typed."""
    return raw.with_columns(
        parse_int(pl.col("id")).alias("message_row_id"),
        parse_timestamp(pl.col("sent_at")).alias("sent_at_utc"),
        parse_timestamp(pl.col("received_at")).alias("received_at_utc"),
        parse_timestamp(pl.col("responded_at")).alias("responded_at_utc"),
        parse_timestamp(pl.col("updated_at")).alias("updated_at_utc"),
    )


def stage_business_metrics(raw: pl.LazyFrame) -> pl.LazyFrame:
    """Daily business figures, one row per `business_metrics` row (restatements kept), typed."""
    return raw.with_columns(
        parse_int(pl.col("id")).alias("metric_row_id"),
        parse_date(pl.col("metric_date")).alias("metric_day"),
        parse_float(pl.col("value")).alias("metric_value"),
        parse_timestamp(pl.col("recorded_at")).alias("recorded_at_utc"),
    )


def stage_business_targets(raw: pl.LazyFrame) -> pl.LazyFrame:
    """Targets, one row per `business_targets` row, typed."""
    return raw.with_columns(
        parse_date(pl.col("period_start")).alias("period_start_day"),
        parse_date(pl.col("period_end")).alias("period_end_day"),
        parse_float(pl.col("target_value")).alias("target_value_usd"),
    )


def stage_log_events(raw: pl.LazyFrame) -> pl.LazyFrame:
    """Log events, one row per line of the log files, with `ts` parsed.

    The extract has already decoded each line's JSON with an explicit schema (queues as
    integers, cpu and memory as numbers, the rest as text) and marked the lines it could not
    decode in `parse_error`.
    """
    return raw.with_columns(parse_timestamp(pl.col("ts")).alias("ts_utc"))
