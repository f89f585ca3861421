"""The row rules of `contract/sources.md` ("What counts as valid"), and the split they make.

A row or event that breaks a rule is bad input: it goes to `quarantine.rejected_rows` with the
rule it broke (the first one, in the order listed here) and never reaches a KPI. Each rule is
a Polars expression over a staged frame (see `transforms/staging.py`) that is true where the
row breaks it.

Rule names are stable (reports and tests count by them):
`not_json`, `missing_field`, `wrong_type`, `unparseable_timestamp`, `future_timestamp`,
`out_of_range`, `time_order`, `unknown_status`, `bad_participants`, `unknown_agent`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl

FUTURE_TOLERANCE = timedelta(minutes=5)

DEPLOYMENT_STATUSES = ("deployed", "failed", "retired")
WORKFLOW_STATUSES = ("running", "completed", "failed")
MESSAGE_STATUSES = ("pending", "delivered", "failed")
HEARTBEAT_STATUSES = ("ok", "degraded")
EVENT_TYPES_WITH_RULES = ("heartbeat", "resource", "error")


@dataclass(frozen=True)
class Rule:
    """One rule of the source contract: `broken` is true where a row breaks it."""

    name: str
    check: str
    broken: pl.Expr


@dataclass(frozen=True)
class RuleContext:
    """What the rules need beyond the row: the clock of the run and the agents registry."""

    run_started_at: datetime
    known_agents: pl.Series

    @property
    def latest_allowed(self) -> datetime:
        """Timestamps after this lie in the future (the contract allows 5 minutes of skew)."""
        return self.run_started_at + FUTURE_TOLERANCE


def not_utf8(column: str) -> Rule:
    """A table row with a value that is not UTF-8 text (SQLite stores any bytes): `column`
    names the row's columns that held one (see flows.extract.NOT_UTF8)."""
    return Rule("wrong_type", "every text value is UTF-8 text", pl.col(column).is_not_null())


def _missing(raw: str) -> Rule:
    return Rule("missing_field", f"{raw} is present", pl.col(raw).is_null())


def _wrong_type(raw: str, typed: str, kind: str) -> Rule:
    return Rule(
        "wrong_type",
        f"{raw} is {kind}",
        pl.col(raw).is_not_null() & pl.col(typed).is_null(),
    )


def _unparseable(raw: str, typed: str) -> Rule:
    return Rule(
        "unparseable_timestamp",
        f"{raw} is an ISO-8601 timestamp",
        pl.col(raw).is_not_null() & pl.col(typed).is_null(),
    )


def _future(raw: str, typed: str, ctx: RuleContext) -> Rule:
    return Rule(
        "future_timestamp",
        f"{raw} is at most 5 minutes after the run started",
        pl.col(typed) > pl.lit(ctx.latest_allowed),
    )


def _timestamp_rules(pairs: Sequence[tuple[str, str]], ctx: RuleContext) -> list[Rule]:
    return [_unparseable(raw, typed) for raw, typed in pairs] + [
        _future(raw, typed, ctx) for raw, typed in pairs
    ]


def _status(column: str, allowed: Iterable[str]) -> Rule:
    allowed = tuple(allowed)
    return Rule(
        "unknown_status",
        f"{column} in {{{', '.join(allowed)}}}",
        pl.col(column).is_not_null() & ~pl.col(column).is_in(allowed),
    )


def _unknown_agent(column: str, ctx: RuleContext) -> Rule:
    return Rule(
        "unknown_agent",
        f"{column} is in agents",
        ~pl.col(column).is_in(ctx.known_agents.implode()),
    )


def agents_rules(ctx: RuleContext) -> list[Rule]:
    """Rules for `agents` rows."""
    return [
        _missing("agent_id"),
        _missing("department"),
        _missing("deployed_at"),
        _missing("deployment_status"),
        _missing("hourly_cost_usd"),
        _wrong_type("hourly_cost_usd", "hourly_cost_usd_value", "a number"),
        *_timestamp_rules([("deployed_at", "deployed_at_utc")], ctx),
        Rule("out_of_range", "hourly_cost_usd >= 0", pl.col("hourly_cost_usd_value") < 0),
        _status("deployment_status", DEPLOYMENT_STATUSES),
    ]


def task_rules(ctx: RuleContext) -> list[Rule]:
    """Rules for `agent_performance` rows."""
    return [
        _missing("agent_id"),
        _missing("execution_time"),
        _missing("success_rate"),
        _missing("timestamp"),
        _wrong_type("execution_time", "execution_time_s", "a number"),
        _wrong_type("success_rate", "success_pct", "a number"),
        *_timestamp_rules([("timestamp", "completed_at")], ctx),
        Rule("out_of_range", "execution_time >= 0", pl.col("execution_time_s") < 0),
        Rule(
            "out_of_range",
            "success_rate between 0 and 100",
            (pl.col("success_pct") < 0) | (pl.col("success_pct") > 100),
        ),
        _unknown_agent("agent_id", ctx),
    ]


def workflow_rules(ctx: RuleContext) -> list[Rule]:
    """Rules for `workflow_executions` rows."""
    participants_unknown = (
        pl.col("participants").list.eval(~pl.element().is_in(ctx.known_agents.implode())).list.any()
    )
    return [
        _missing("workflow_id"),
        _missing("workflow_name"),
        _missing("initiator_agent_id"),
        _missing("participant_agent_ids"),
        _missing("started_at"),
        _missing("status"),
        _missing("errors"),
        _missing("errors_recovered"),
        _missing("updated_at"),
        _wrong_type("errors", "errors_count", "an integer"),
        _wrong_type("errors_recovered", "errors_recovered_count", "an integer"),
        *_timestamp_rules(
            [
                ("started_at", "started_at_utc"),
                ("completed_at", "completed_at_utc"),
                ("updated_at", "updated_at_utc"),
            ],
            ctx,
        ),
        Rule("out_of_range", "errors >= 0", pl.col("errors_count") < 0),
        Rule(
            "out_of_range",
            "0 <= errors_recovered <= errors",
            (pl.col("errors_recovered_count") < 0)
            | (pl.col("errors_recovered_count") > pl.col("errors_count")),
        ),
        Rule(
            "time_order",
            "completed_at >= started_at",
            pl.col("completed_at_utc") < pl.col("started_at_utc"),
        ),
        _status("status", WORKFLOW_STATUSES),
        Rule(
            "bad_participants",
            "participant_agent_ids is a JSON array of strings",
            pl.col("participants").is_null(),
        ),
        _unknown_agent("initiator_agent_id", ctx),
        Rule("unknown_agent", "every participant is in agents", participants_unknown),
    ]


def message_rules(ctx: RuleContext) -> list[Rule]:
    """Rules for `agent_communications` rows."""
    return [
        _missing("message_id"),
        _missing("sender_agent_id"),
        _missing("receiver_agent_id"),
        _missing("sent_at"),
        _missing("status"),
        _missing("updated_at"),
        *_timestamp_rules(
            [
                ("sent_at", "sent_at_utc"),
                ("received_at", "received_at_utc"),
                ("responded_at", "responded_at_utc"),
                ("updated_at", "updated_at_utc"),
            ],
            ctx,
        ),
        Rule(
            "time_order",
            "received_at >= sent_at",
            pl.col("received_at_utc") < pl.col("sent_at_utc"),
        ),
        Rule(
            "time_order",
            "responded_at >= received_at",
            pl.col("responded_at_utc") < pl.col("received_at_utc"),
        ),
        _status("status", MESSAGE_STATUSES),
        _unknown_agent("sender_agent_id", ctx),
        _unknown_agent("receiver_agent_id", ctx),
    ]


def business_metric_rules(ctx: RuleContext) -> list[Rule]:
    """Rules for `business_metrics` rows."""
    metric = pl.col("metric_name")
    value = pl.col("metric_value")
    return [
        _missing("metric_date"),
        _missing("department"),
        _missing("metric_name"),
        _missing("value"),
        _missing("recorded_at"),
        _wrong_type("value", "metric_value", "a number"),
        _unparseable("metric_date", "metric_day"),
        _unparseable("recorded_at", "recorded_at_utc"),
        Rule(
            "future_timestamp",
            "metric_date is not after the day the run started (+5 minutes)",
            pl.col("metric_day") > pl.lit(ctx.latest_allowed.date()),
        ),
        _future("recorded_at", "recorded_at_utc", ctx),
        Rule(
            "out_of_range",
            "seo_score between 0 and 100",
            (metric == "seo_score") & ((value < 0) | (value > 100)),
        ),
        Rule(
            "out_of_range",
            "engagement_rate between 0 and 1",
            (metric == "engagement_rate") & ((value < 0) | (value > 1)),
        ),
    ]


def business_target_rules(ctx: RuleContext) -> list[Rule]:
    """Rules for `business_targets` rows. Targets may lie in the future: no future rule."""
    del ctx
    return [
        _missing("metric_name"),
        _missing("period_start"),
        _missing("period_end"),
        _missing("target_value"),
        _wrong_type("target_value", "target_value_usd", "a number"),
        _unparseable("period_start", "period_start_day"),
        _unparseable("period_end", "period_end_day"),
        Rule(
            "time_order",
            "period_end >= period_start",
            pl.col("period_end_day") < pl.col("period_start_day"),
        ),
    ]


def log_event_rules(ctx: RuleContext) -> list[Rule]:
    """Rules for log lines (all event types; event-specific fields only where they apply)."""
    event = pl.col("event")
    heartbeat = event == "heartbeat"
    resource = event == "resource"
    return [
        Rule("not_json", "the line is a JSON object", pl.col("parse_error") == "not_json"),
        _missing("ts"),
        _missing("agent_id"),
        _missing("event"),
        Rule(
            "wrong_type",
            "fields have their contract types",
            pl.col("parse_error").str.starts_with("wrong_type"),
        ),
        Rule(
            "missing_field",
            "a heartbeat has status, task_queue and message_queue",
            heartbeat
            & (
                pl.col("status").is_null()
                | pl.col("task_queue").is_null()
                | pl.col("message_queue").is_null()
            ),
        ),
        Rule(
            "missing_field",
            "a resource sample has cpu_pct and memory_mb",
            resource & (pl.col("cpu_pct").is_null() | pl.col("memory_mb").is_null()),
        ),
        _unparseable("ts", "ts_utc"),
        _future("ts", "ts_utc", ctx),
        Rule(
            "out_of_range",
            "task_queue and message_queue >= 0",
            heartbeat & ((pl.col("task_queue") < 0) | (pl.col("message_queue") < 0)),
        ),
        Rule(
            "out_of_range",
            "cpu_pct and memory_mb >= 0",
            resource & ((pl.col("cpu_pct") < 0) | (pl.col("memory_mb") < 0)),
        ),
        Rule(
            "unknown_status",
            f"heartbeat status in {{{', '.join(HEARTBEAT_STATUSES)}}}",
            heartbeat & ~pl.col("status").is_in(HEARTBEAT_STATUSES),
        ),
        _unknown_agent("agent_id", ctx),
    ]


def first_broken_rule(rules: Sequence[Rule]) -> pl.Expr:
    """The position in `rules` of the first rule a row breaks; NULL for a valid row.

    A rule whose expression is NULL (a comparison with a missing value) does not count as
    broken: missing values are the `missing_field` rules' job.
    """
    return pl.coalesce(
        [pl.when(rule.broken.fill_null(False)).then(pl.lit(i)) for i, rule in enumerate(rules)]
    )


def split_by_rules(
    staged: pl.DataFrame, rules: Sequence[Rule]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split staged rows into (valid rows, rejected rows with `rule` and `rule_check`).

    Each rule is evaluated once per row; the first broken one names the row's rule."""
    positions = list(range(len(rules)))
    judged = staged.with_columns(first_broken_rule(rules).alias("_rule"))
    valid = judged.filter(pl.col("_rule").is_null()).drop("_rule")
    rejected = (
        judged.filter(pl.col("_rule").is_not_null())
        .with_columns(
            pl.col("_rule")
            .replace_strict(positions, [r.name for r in rules], return_dtype=pl.String)
            .alias("rule"),
            pl.col("_rule")
            .replace_strict(positions, [r.check for r in rules], return_dtype=pl.String)
            .alias("rule_check"),
        )
        .drop("_rule")
    )
    return valid, rejected
