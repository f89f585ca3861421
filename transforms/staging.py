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


# The shapes nearly every timestamp has, parsed by fixed positions (about twice as fast).
_ISO_TIMESTAMP = (
    r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?"
    r"(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)?$"
)


def _parse_iso_timestamp(text: pl.Expr) -> pl.Expr:
    """`YYYY-MM-DD[ T]HH:MM:SS[.f][Z|+HH:MM]` to a naive UTC `Datetime("us")`; NULL for
    any other text (which `parse_timestamp` then takes)."""
    whole_seconds = (
        text.str.replace("T", " ", literal=True)
        .str.slice(0, 19)
        .str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M:%S", strict=False)
    )
    sign = text.str.slice(-6, 1)
    # The fraction's digits lie between the seconds' dot and the zone (`Z`, `+HH:MM` or
    # none): taken by position, the whole parse costs a fifth less CPU than with a regular
    # expression extracting them.
    zone_bytes = pl.when(sign.is_in(["+", "-"])).then(6).when(text.str.ends_with("Z")).then(1)
    fraction = pl.when(text.str.slice(19, 1) == ".").then(
        text.str.slice(20, text.str.len_bytes() - 20 - zone_bytes.otherwise(0))
    )
    micros = (fraction + "00000").str.slice(0, 6).cast(pl.Int64, strict=False).fill_null(0)
    offset = text.str.slice(-5, 2).cast(pl.Int64, strict=False) * 60 + text.str.slice(-2, 2).cast(
        pl.Int64, strict=False
    )
    offset_minutes = pl.when(sign == "+").then(offset).when(sign == "-").then(-offset).otherwise(0)
    return pl.when(text.str.contains(_ISO_TIMESTAMP)).then(
        whole_seconds + pl.duration(microseconds=micros, minutes=-offset_minutes)
    )


def with_timestamps(frame: pl.LazyFrame, columns: dict[str, str]) -> pl.LazyFrame:
    """Add parsed timestamp columns (`{new column: text column}`), exactly as
    `parse_timestamp` parses them but faster: the common shapes first, then the general
    parser on the few values left. (Two steps, because within one expression Polars
    would run the general parser on every value.)"""
    plain = frame.with_columns(
        _parse_iso_timestamp(pl.col(text)).alias(name) for name, text in columns.items()
    )
    return plain.with_columns(
        pl.coalesce(name, parse_timestamp(pl.when(pl.col(name).is_null()).then(pl.col(text))))
        for name, text in columns.items()
    )


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
    return with_timestamps(raw, {"deployed_at_utc": "deployed_at"}).with_columns(
        parse_float(pl.col("hourly_cost_usd")).alias("hourly_cost_usd_value"),
    )


def stage_tasks(raw: pl.LazyFrame) -> pl.LazyFrame:
    """Finished tasks, one row per `agent_performance` row, typed."""
    return with_timestamps(raw, {"completed_at": "timestamp"}).with_columns(
        parse_int(pl.col("id")).alias("task_id"),
        parse_float(pl.col("execution_time")).alias("execution_time_s"),
        parse_float(pl.col("success_rate")).alias("success_pct"),
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
    timestamps = {
        "started_at_utc": "started_at",
        "completed_at_utc": "completed_at",
        "updated_at_utc": "updated_at",
    }
    return with_timestamps(raw, timestamps).with_columns(
        parse_participants(pl.col("participant_agent_ids")).alias("participants"),
        parse_int(pl.col("errors")).alias("errors_count"),
        parse_int(pl.col("errors_recovered")).alias("errors_recovered_count"),
    )


def stage_messages(raw: pl.LazyFrame) -> pl.LazyFrame:
    """Inter-agent messages, one row per `agent_communications` row, typed."""
    timestamps = {
        "sent_at_utc": "sent_at",
        "received_at_utc": "received_at",
        "responded_at_utc": "responded_at",
        "updated_at_utc": "updated_at",
    }
    return with_timestamps(raw, timestamps).with_columns(
        parse_int(pl.col("id")).alias("message_row_id")
    )


def stage_business_metrics(raw: pl.LazyFrame) -> pl.LazyFrame:
    """Daily business figures, one row per `business_metrics` row (restatements kept), typed."""
    return with_timestamps(raw, {"recorded_at_utc": "recorded_at"}).with_columns(
        parse_int(pl.col("id")).alias("metric_row_id"),
        parse_date(pl.col("metric_date")).alias("metric_day"),
        parse_float(pl.col("value")).alias("metric_value"),
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
    return with_timestamps(raw, {"ts_utc": "ts"})
