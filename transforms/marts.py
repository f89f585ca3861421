"""The marts of `contract/kpis.md`, one function per mart.

Every function is pure: facts in (Polars LazyFrames of the `core.*` tables), mart rows out.
`as_of`, thresholds and targets are arguments; the clock is never read. Period marts are
computed for an explicit frame of requested periods (see `transforms/periods.py`), from the
facts of each period, never by combining ratios or percentiles of smaller periods.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl
import polars.selectors as cs

from transforms.periods import PERIOD_KEYS, PERIOD_TYPE, assign_periods

SECONDS_PER_DAY = 86_400
MICROSECONDS = 1_000_000

HEALTH_STATUSES = ("green", "yellow", "red", "unknown")


@dataclass(frozen=True)
class KpiParams:
    """The configurable parts of the KPI definitions (defaults are the seed's)."""

    heartbeat_interval_s: float = 60.0
    success_green: float = 0.95
    success_red: float = 0.80
    response_green_s: float = 2.0
    response_red_s: float = 5.0
    default_revenue_target_usd: float = 50_000.0
    default_lead_pipeline_target_usd: float = 80_000.0
    healthy_heartbeat_age_s: float = 60.0


@dataclass(frozen=True)
class Facts:
    """The core tables a mart computation reads (see docs/design.md for their columns).

    For a partial computation the fact frames may hold only the rows of the requested periods
    (heartbeats from one interval before the first period), except `workflows`, which must be
    complete because `multi_agent_workflows_succeeded` is cumulative.
    """

    agents: pl.LazyFrame
    tasks: pl.LazyFrame
    messages: pl.LazyFrame
    workflows: pl.LazyFrame
    heartbeats: pl.LazyFrame
    resources: pl.LazyFrame
    errors: pl.LazyFrame


# ---------------------------------------------------------------------------------------------
# Shared pieces

# The columns of the facts that name an agent or a department, by frame.
_ID_COLUMNS = {
    "agents": ["agent_id", "department"],
    "tasks": ["agent_id"],
    "messages": ["sender_agent_id", "receiver_agent_id"],
    "workflows": ["initiator_agent_id"],
    "heartbeats": ["agent_id"],
    "resources": ["agent_id"],
    "errors": ["agent_id"],
}


def _with_categorical_ids(facts: Facts) -> Facts:
    """The facts with their agent and department names as categoricals: grouping and
    joining on them is cheaper than on text (the marts turn them back into text)."""
    cast = {
        name: getattr(facts, name).with_columns(
            pl.col(c).cast(pl.Categorical)
            for c in columns
            if c in getattr(facts, name).collect_schema()
        )
        for name, columns in _ID_COLUMNS.items()
    }
    workflows = cast["workflows"]
    if "participant_agent_ids" in workflows.collect_schema():
        workflows = workflows.with_columns(
            pl.col("participant_agent_ids").cast(pl.List(pl.Categorical))
        )
    cast["workflows"] = workflows
    # Once: every mart reads them, and a lazy cast would run again for each reader.
    collected = pl.collect_all(list(cast.values()))
    return Facts(**{name: frame.lazy() for name, frame in zip(cast, collected, strict=True)})


def seconds_between(later: pl.Expr, earlier: pl.Expr) -> pl.Expr:
    """`later - earlier` in seconds, as a float."""
    return microseconds_between(later, earlier) / MICROSECONDS


def microseconds_between(later: pl.Expr, earlier: pl.Expr) -> pl.Expr:
    """`later - earlier` in whole microseconds."""
    return (later - earlier).dt.total_microseconds()


def mean_seconds(microseconds: pl.Expr) -> pl.Expr:
    """The mean of whole microseconds, in seconds. Averaged before the division, so a mean of
    exactly 2 s is 2.0, never 1.9999999999999998 (thresholds test such means exactly)."""
    return microseconds.mean() / MICROSECONDS


def ratio(numerator: pl.Expr, denominator: pl.Expr) -> pl.Expr:
    """numerator / denominator, NULL where the denominator is 0 or NULL (never 0, never inf)."""
    return pl.when(denominator != 0).then(numerator / denominator).otherwise(None)


def health_status(success_rate: pl.Expr, response_s: pl.Expr, params: KpiParams) -> pl.Expr:
    """`green`, `yellow`, `red` or `unknown` from a success rate and a response time."""
    s_known = success_rate.is_not_null()
    r_known = response_s.is_not_null()
    is_red = (s_known & (success_rate < params.success_red)) | (
        r_known & (response_s > params.response_red_s)
    )
    is_green = (~s_known | (success_rate >= params.success_green)) & (
        ~r_known | (response_s < params.response_green_s)
    )
    return (
        pl.when(~s_known & ~r_known)
        .then(pl.lit("unknown"))
        .when(is_red)
        .then(pl.lit("red"))
        .when(is_green)
        .then(pl.lit("green"))
        .otherwise(pl.lit("yellow"))
    )


def as_of(heartbeats: pl.LazyFrame, activity: pl.LazyFrame) -> pl.LazyFrame:
    """One row, one column `as_of`: the latest heartbeat `ts`; without any heartbeat, the
    latest `ts` of `activity` (see `activity_timestamps`)."""
    latest_beat = heartbeats.select(pl.col("ts").max().alias("beat"))
    latest_other = activity.select(pl.col("ts").max().alias("other"))
    return pl.concat([latest_beat, latest_other], how="horizontal").select(
        pl.coalesce("beat", "other").alias("as_of")
    )


def activity_timestamps(facts: Facts) -> pl.LazyFrame:
    """Every timestamp of the loaded facts other than heartbeats, as one column `ts`."""
    columns = [
        (facts.tasks, "completed_at"),
        (facts.workflows, "started_at"),
        (facts.workflows, "completed_at"),
        (facts.messages, "sent_at"),
        (facts.messages, "received_at"),
        (facts.messages, "responded_at"),
        (facts.resources, "ts"),
        (facts.errors, "ts"),
    ]
    return pl.concat(
        [frame.select(pl.col(column).alias("ts")) for frame, column in columns]
    ).filter(pl.col("ts").is_not_null())


def _task_stats(tasks: pl.LazyFrame, keys: list[str]) -> pl.LazyFrame:
    succeeded = pl.col("success_pct") == 100
    failed = pl.col("success_pct") == 0
    exec_s = pl.col("execution_time_s")
    return tasks.group_by(keys).agg(
        pl.len().alias("tasks_total"),
        succeeded.sum().alias("tasks_succeeded"),
        failed.sum().alias("tasks_failed"),
        (pl.col("success_pct").mean() / 100).alias("success_rate"),
        exec_s.mean().alias("exec_time_avg_s"),
        exec_s.quantile(0.5, interpolation="linear").alias("exec_time_p50_s"),
        exec_s.quantile(0.95, interpolation="linear").alias("exec_time_p95_s"),
        exec_s.max().alias("exec_time_max_s"),
    )


def _received_stats(received: pl.LazyFrame, keys: list[str]) -> pl.LazyFrame:
    response_us = pl.col("response_time_us")
    return received.group_by(keys).agg(
        pl.len().alias("messages_received"),
        pl.col("responded_at").is_not_null().sum().alias("messages_responded"),
        mean_seconds(response_us).alias("response_time_avg_s"),
        (response_us.quantile(0.95, interpolation="linear") / MICROSECONDS).alias(
            "response_time_p95_s"
        ),
    )


def _sent_stats(sent: pl.LazyFrame, keys: list[str]) -> pl.LazyFrame:
    return sent.group_by(keys).agg(
        pl.len().alias("messages_sent"),
        (pl.col("status") == "delivered").sum().alias("_delivered"),
        (pl.col("status") == "failed").sum().alias("_failed"),
    )


def _received_messages(facts: Facts, periods: pl.LazyFrame) -> pl.LazyFrame:
    """Messages in the period of `received_at`, for their receiver, with the response time."""
    return assign_periods(
        facts.messages.select(
            pl.col("receiver_agent_id").alias("agent_id"),
            "received_at",
            "responded_at",
            microseconds_between(pl.col("responded_at"), pl.col("received_at")).alias(
                "response_time_us"
            ),
        ),
        "received_at",
        periods,
    )


def _sent_messages(facts: Facts, periods: pl.LazyFrame) -> pl.LazyFrame:
    """Messages in the period of `sent_at`, for their sender."""
    return assign_periods(
        facts.messages.select(pl.col("sender_agent_id").alias("agent_id"), "sent_at", "status"),
        "sent_at",
        periods,
    )


def _participations(facts: Facts, periods: pl.LazyFrame) -> pl.LazyFrame:
    """One row per (workflow, participant), in the period of the workflow's `started_at`."""
    return assign_periods(
        facts.workflows.select("workflow_id", "status", "started_at", "participant_agent_ids")
        .explode("participant_agent_ids")
        .rename({"participant_agent_ids": "agent_id"})
        .filter(pl.col("agent_id").is_not_null()),
        "started_at",
        periods,
    )


def heartbeat_coverage_by_day(
    heartbeats: pl.LazyFrame, agents: pl.LazyFrame, as_of_ts: datetime, interval_s: float
) -> pl.LazyFrame:
    """Covered seconds per (agent_id, day): the union of the heartbeats' intervals
    `[ts, ts + interval)` inside the agent's scope `[deployed_at, as_of)`, split at midnight.

    Union lengths add up over disjoint pieces of time, so a week's or a month's covered time is
    the sum of its days' (this is a sum of facts, not an average of ratios).
    """
    if not 0 < interval_s <= SECONDS_PER_DAY:
        raise ValueError("the heartbeat interval must be within (0, 86400] seconds")
    interval = pl.duration(microseconds=round(interval_s * MICROSECONDS))
    beats = (
        heartbeats.select("agent_id", "ts")
        .join(agents.select("agent_id", "deployed_at"), on="agent_id", how="inner")
        .sort("ts")
    )
    # Each beat's interval inside the scope; in time order, start and end both grow.
    pieces = beats.select(
        "agent_id",
        pl.max_horizontal("ts", "deployed_at").alias("start"),
        pl.min_horizontal(pl.col("ts") + interval, pl.lit(as_of_ts)).alias("end"),
    ).filter(pl.col("end") > pl.col("start"))
    # A piece adds what lies beyond the furthest end before it: the agent's union as
    # disjoint parts, each shorter than a day.
    furthest_end_before = pl.col("end").cum_max().shift(1).over("agent_id")
    parts = pieces.select(
        "agent_id",
        pl.max_horizontal("start", furthest_end_before.fill_null(pl.col("start"))).alias("start"),
        "end",
    ).filter(pl.col("end") > pl.col("start"))
    # Split at midnight: a part covers its start's day and at most the next one.
    midnight = pl.col("start").dt.truncate("1d") + pl.duration(days=1)
    first_day = parts.select(
        "agent_id",
        pl.col("start").dt.date().alias("day"),
        seconds_between(pl.min_horizontal("end", midnight), pl.col("start")).alias("covered_s"),
    )
    next_day = parts.filter(pl.col("end") > midnight).select(
        "agent_id",
        midnight.dt.date().alias("day"),
        seconds_between(pl.col("end"), midnight).alias("covered_s"),
    )
    return (
        pl.concat([first_day, next_day]).group_by("agent_id", "day").agg(pl.col("covered_s").sum())
    )


def _coverage(
    facts: Facts, periods: pl.LazyFrame, as_of_ts: datetime, params: KpiParams
) -> pl.LazyFrame:
    # Collected here (one row per agent and day): placing a frame in periods reads it once
    # per kind of period, and the filters each reading pushes down differ, so Polars would
    # run the union of the heartbeats (a sort and a window per agent) for each of them. A
    # month with its days and weeks took 0.6 s instead of 0.15 s.
    by_day = heartbeat_coverage_by_day(
        facts.heartbeats, facts.agents, as_of_ts, params.heartbeat_interval_s
    ).collect()
    return (
        assign_periods(by_day.lazy(), "day", periods)
        .group_by([*PERIOD_KEYS, "agent_id"])
        .agg(pl.col("covered_s").sum())
    )


# The columns of the task, resource and heartbeat facts that the period marts read: only
# these are placed in periods (each row three times) and loaded for a partition.
TASK_COLUMNS_USED = ["agent_id", "execution_time_s", "success_pct", "completed_at"]
RESOURCE_COLUMNS_USED = ["agent_id", "ts", "cpu_pct", "memory_mb"]
HEARTBEAT_COLUMNS_USED = ["agent_id", "ts", "task_queue", "message_queue"]


@dataclass(frozen=True)
class PeriodFacts:
    """The facts placed in the requested periods, once, for all the period marts.

    Each frame carries period, period_start and period_end; a fact appears once for each
    requested period that contains it.
    """

    tasks: pl.LazyFrame
    received: pl.LazyFrame
    sent: pl.LazyFrame
    beat_days: pl.LazyFrame  # per agent and day: the queues' sums and counts (_beat_days)
    resources: pl.LazyFrame
    errors: pl.LazyFrame
    participations: pl.LazyFrame
    coverage: pl.LazyFrame
    active: pl.LazyFrame  # (period, period_start, agent_id) with a task or a heartbeat


def assign_facts(
    facts: Facts,
    periods: pl.LazyFrame,
    as_of_ts: datetime,
    params: KpiParams,
    *,
    materialize: bool = True,
) -> PeriodFacts:
    """Place every fact in its requested periods (materialized once by default, since the
    agent, department and system marts all read them)."""
    frames = {
        # With the registry's department: placed once, for the agents and their departments.
        "tasks": assign_periods(
            facts.tasks.select(*TASK_COLUMNS_USED).join(
                facts.agents.select("agent_id", "department"), on="agent_id", how="left"
            ),
            "completed_at",
            periods,
        ),
        "received": _received_messages(facts, periods),
        "sent": _sent_messages(facts, periods),
        "beat_days": assign_periods(_beat_days(facts.heartbeats), "day_start", periods),
        "resources": assign_periods(facts.resources.select(*RESOURCE_COLUMNS_USED), "ts", periods),
        "errors": assign_periods(facts.errors.select("agent_id", "ts"), "ts", periods),
        "participations": _participations(facts, periods),
        "coverage": _coverage(facts, periods, as_of_ts, params),
    }
    if materialize:
        collected = pl.collect_all(list(frames.values()))
        frames = {name: frame.lazy() for name, frame in zip(frames, collected, strict=True)}
    # Active in a period: a task or a heartbeat on one of its days. The days are placed,
    # not every fact again (a year's heartbeats are 15M rows, 45M once placed).
    task_days = facts.tasks.select(
        "agent_id", pl.col("completed_at").dt.truncate("1d").alias("day_start")
    )
    days = pl.concat([task_days, frames["beat_days"].select("agent_id", "day_start")]).unique()
    active = assign_periods(days, "day_start", periods).select(*PERIOD_KEYS, "agent_id").unique()
    return PeriodFacts(**frames, active=active.collect().lazy() if materialize else active)


def _beat_days(heartbeats: pl.LazyFrame) -> pl.LazyFrame:
    """Per agent and day (`day_start`, midnight): the sums and counts of the heartbeats'
    queues. A period's mean queue is the sum of its days' sums over the sum of their counts:
    the same integers summed, and a day lies in one period of each kind."""
    return heartbeats.group_by("agent_id", pl.col("ts").dt.truncate("1d").alias("day_start")).agg(
        pl.col("task_queue").sum().alias("task_queue_sum"),
        pl.col("task_queue").count().alias("task_queue_count"),
        pl.col("message_queue").sum().alias("message_queue_sum"),
        pl.col("message_queue").count().alias("message_queue_count"),
    )


# ---------------------------------------------------------------------------------------------
# marts.agent_kpis


def _agent_rows(
    facts: Facts, periods: pl.LazyFrame, activity_keys: list[pl.LazyFrame], as_of_ts: datetime
) -> pl.LazyFrame:
    """(period, period_start, agent_id) of every agent row: periods overlapping
    `[date(deployed_at), as_of]`, plus any period with activity of the agent."""
    as_of_day = as_of_ts.date()
    deployed = facts.agents.select(
        "agent_id", pl.col("deployed_at").dt.date().alias("deployed_day")
    )
    overlapping = (
        periods.join(deployed, how="cross")
        .filter(
            (pl.col("deployed_day") <= pl.lit(as_of_day))
            & (pl.col("period_start") <= pl.lit(as_of_day))
            & (pl.col("period_end") > pl.col("deployed_day"))
        )
        .select(*PERIOD_KEYS, "agent_id")
    )
    return pl.concat(
        [overlapping, *[keys.select(*PERIOD_KEYS, "agent_id") for keys in activity_keys]]
    ).unique()


def agent_kpis(
    facts: Facts,
    periods: pl.LazyFrame,
    as_of_ts: datetime,
    params: KpiParams,
    assigned: PeriodFacts | None = None,
) -> pl.LazyFrame:
    """marts.agent_kpis: one row per (period, period_start, agent_id) for the requested periods."""
    keys = [*PERIOD_KEYS, "agent_id"]
    placed = assigned or assign_facts(facts, periods, as_of_ts, params, materialize=False)
    tasks, received, sent = placed.tasks, placed.received, placed.sent
    resources, errors = placed.resources, placed.errors
    participations = placed.participations

    task_stats = _task_stats(tasks, keys)
    received_stats = _received_stats(received, keys)
    sent_stats = _sent_stats(sent, keys)
    resource_stats = resources.group_by(keys).agg(
        pl.col("cpu_pct").mean().alias("cpu_avg_pct"),
        pl.col("cpu_pct").max().alias("cpu_max_pct"),
        pl.col("memory_mb").mean().alias("memory_avg_mb"),
        pl.col("memory_mb").max().alias("memory_max_mb"),
    )
    error_stats = errors.group_by(keys).agg(pl.len().alias("errors_logged"))
    workflow_stats = participations.group_by(keys).agg(
        pl.col("workflow_id").n_unique().alias("workflows_participated"),
        (pl.col("status") == "completed").sum().alias("workflows_succeeded"),
        (pl.col("status") == "failed").sum().alias("_workflows_failed"),
    )
    coverage = placed.coverage

    rows = _agent_rows(
        facts,
        periods,
        [
            task_stats,
            received_stats,
            sent_stats,
            resource_stats,
            error_stats,
            workflow_stats,
            placed.active,
        ],
        as_of_ts,
    )
    agents = facts.agents.select(
        "agent_id", "department", "agent_class", "deployed_at", "hourly_cost_usd"
    )
    counts = [
        "tasks_total",
        "tasks_succeeded",
        "tasks_failed",
        "messages_received",
        "messages_responded",
        "messages_sent",
        "_delivered",
        "_failed",
        "errors_logged",
        "workflows_participated",
        "workflows_succeeded",
        "_workflows_failed",
    ]
    joined = rows.join(periods, on=PERIOD_KEYS, how="left").join(agents, on="agent_id", how="left")
    for stats in (
        task_stats,
        received_stats,
        sent_stats,
        resource_stats,
        error_stats,
        workflow_stats,
        coverage,
    ):
        joined = joined.join(stats, on=keys, how="left")

    scope_start = pl.max_horizontal(pl.col("period_start").cast(pl.Datetime("us")), "deployed_at")
    scope_end = pl.min_horizontal(pl.col("period_end").cast(pl.Datetime("us")), pl.lit(as_of_ts))
    scope_s = seconds_between(scope_end, scope_start).clip(lower_bound=0)
    uptime_hours = pl.col("covered_s") / 3600

    result = (
        joined.with_columns(
            *[pl.col(c).fill_null(0).cast(pl.Int64) for c in counts],
            pl.col("covered_s").fill_null(0.0),
            scope_s.alias("scope_s"),
        )
        .with_columns(
            ratio(pl.col("tasks_failed"), pl.col("tasks_total")).alias("error_rate"),
            ratio(pl.col("_delivered"), pl.col("_delivered") + pl.col("_failed")).alias(
                "message_delivery_rate"
            ),
            ratio(pl.col("covered_s"), pl.col("scope_s")).alias("uptime_pct"),
            uptime_hours.alias("uptime_hours"),
            ratio(pl.col("tasks_total").cast(pl.Float64), uptime_hours).alias(
                "tasks_per_uptime_hour"
            ),
            ratio(
                pl.col("workflows_succeeded"),
                pl.col("workflows_succeeded") + pl.col("_workflows_failed"),
            ).alias("collaboration_efficiency"),
            (pl.col("hourly_cost_usd") * uptime_hours).alias("operating_cost_usd"),
            (pl.col("period_end").cast(pl.Datetime("us")) <= pl.lit(as_of_ts)).alias("is_complete"),
        )
        .with_columns(
            ratio(pl.col("operating_cost_usd"), pl.col("tasks_total")).alias("cost_per_task_usd"),
            health_status(pl.col("success_rate"), pl.col("response_time_avg_s"), params).alias(
                "health_status"
            ),
            _productivity_rank(PERIOD_KEYS).alias("rank_overall"),
            _productivity_rank([*PERIOD_KEYS, "department"]).alias("rank_in_department"),
        )
    )
    return result.select(AGENT_KPI_COLUMNS).sort(keys)


def _productivity_rank(partition: list[str]) -> pl.Expr:
    """RANK() by tasks_succeeded desc, then success_rate desc with NULLs last; ties share."""
    # success_rate lies in [0, 1]: -1 puts a NULL after every known rate.
    key = pl.struct(pl.col("tasks_succeeded"), pl.col("success_rate").fill_null(-1.0))
    return key.rank("min", descending=True).over(partition).cast(pl.Int64)


AGENT_KPI_COLUMNS = [
    "period",
    "period_start",
    "period_end",
    "agent_id",
    "department",
    "agent_class",
    "tasks_total",
    "tasks_succeeded",
    "tasks_failed",
    "success_rate",
    "error_rate",
    "exec_time_avg_s",
    "exec_time_p50_s",
    "exec_time_p95_s",
    "exec_time_max_s",
    "messages_received",
    "messages_responded",
    "response_time_avg_s",
    "response_time_p95_s",
    "messages_sent",
    "message_delivery_rate",
    "uptime_pct",
    "uptime_hours",
    "tasks_per_uptime_hour",
    "cpu_avg_pct",
    "cpu_max_pct",
    "memory_avg_mb",
    "memory_max_mb",
    "errors_logged",
    "workflows_participated",
    "workflows_succeeded",
    "collaboration_efficiency",
    "operating_cost_usd",
    "cost_per_task_usd",
    "health_status",
    "rank_overall",
    "rank_in_department",
    "is_complete",
    "covered_s",
    "scope_s",
]


# ---------------------------------------------------------------------------------------------
# marts.department_kpis

BUSINESS_SUMS = [
    "revenue_usd",
    "lead_pipeline_usd",
    "cost_savings_usd",
    "leads_generated",
    "conversions",
    "insights_generated",
    "content_published",
]
BUSINESS_MEANS = {"seo_score": "seo_score_avg", "engagement_rate": "engagement_rate_avg"}


def _active_agents(active: pl.LazyFrame, keys: list[str]) -> pl.LazyFrame:
    """agents_active per key: agents with a task or a heartbeat in the period (`active`, see
    PeriodFacts)."""
    return active.group_by(keys).agg(pl.col("agent_id").n_unique().alias("agents_active"))


def _with_department(frame: pl.LazyFrame, agents: pl.LazyFrame) -> pl.LazyFrame:
    return frame.join(agents.select("agent_id", "department"), on="agent_id", how="inner")


def department_kpis(
    facts: Facts,
    agent_rows: pl.LazyFrame,
    business_metrics: pl.LazyFrame,
    periods: pl.LazyFrame,
    params: KpiParams,
    assigned: PeriodFacts | None = None,
) -> pl.LazyFrame:
    """marts.department_kpis: one row per (period, period_start, department), computed over
    all facts of the department's agents; `agent_rows` are this run's agent_kpis rows."""
    keys = [*PERIOD_KEYS, "department"]
    placed = assigned or assign_facts(facts, periods, datetime.max, params, materialize=False)
    # Tasks carry the registry's department (NULL for an agent not in it: left out here).
    tasks = placed.tasks.filter(pl.col("department").is_not_null())
    received = _with_department(placed.received, facts.agents)

    rows = agent_rows.select(keys).unique()
    from_agent_rows = agent_rows.group_by(keys).agg(
        (pl.col("health_status") == "green").sum().alias("agents_green"),
        (pl.col("health_status") == "yellow").sum().alias("agents_yellow"),
        (pl.col("health_status") == "red").sum().alias("agents_red"),
        pl.col("covered_s").sum().alias("_covered_s"),
        pl.col("scope_s").sum().alias("_scope_s"),
        pl.col("operating_cost_usd").sum().alias("operating_cost_usd"),
    )
    registered = (
        periods.join(facts.agents.select("agent_id", "department", "deployed_at"), how="cross")
        .filter(pl.col("deployed_at") < pl.col("period_end").cast(pl.Datetime("us")))
        .group_by(keys)
        .agg(pl.len().alias("agents_total"))
    )
    active = _active_agents(_with_department(placed.active, facts.agents), keys)
    task_stats = _task_stats(tasks, keys).drop("exec_time_max_s")
    response_stats = received.group_by(keys).agg(
        mean_seconds(pl.col("response_time_us")).alias("response_time_avg_s")
    )
    business = _department_business(business_metrics, periods)

    joined = rows.join(periods, on=PERIOD_KEYS, how="left")
    for stats in (registered, active, from_agent_rows, task_stats, response_stats, business):
        joined = joined.join(stats, on=keys, how="left")
    counts = [
        "agents_total",
        "agents_active",
        "agents_green",
        "agents_yellow",
        "agents_red",
        "tasks_total",
        "tasks_succeeded",
        "tasks_failed",
    ]
    result = joined.with_columns(
        *[pl.col(c).fill_null(0).cast(pl.Int64) for c in counts],
        *[pl.col(c).fill_null(0.0) for c in BUSINESS_SUMS],
        pl.col("operating_cost_usd").fill_null(0.0),
    ).with_columns(
        ratio(pl.col("tasks_failed"), pl.col("tasks_total")).alias("error_rate"),
        ratio(pl.col("_covered_s"), pl.col("_scope_s")).alias("uptime_pct"),
        ratio(pl.col("conversions"), pl.col("leads_generated")).alias("conversion_rate"),
        health_status(pl.col("success_rate"), pl.col("response_time_avg_s"), params).alias(
            "health_status"
        ),
        pl.col("success_rate")
        .fill_null(-1.0)
        .rank("min", descending=True)
        .over(PERIOD_KEYS)
        .cast(pl.Int64)
        .alias("rank_success"),
    )
    return result.select(DEPARTMENT_KPI_COLUMNS).sort(keys)


def _department_business(business_metrics: pl.LazyFrame, periods: pl.LazyFrame) -> pl.LazyFrame:
    keys = [*PERIOD_KEYS, "department"]
    figures = assign_periods(business_metrics, "metric_date", periods)
    value = pl.col("value")
    metric = pl.col("metric_name")
    return figures.group_by(keys).agg(
        *[value.filter(metric == name).sum().alias(name) for name in BUSINESS_SUMS],
        ratio(
            value.filter(metric == "predictions_correct").sum(),
            value.filter(metric == "predictions_total").sum(),
        ).alias("prediction_accuracy"),
        *[
            value.filter(metric == name).mean().alias(alias)
            for name, alias in BUSINESS_MEANS.items()
        ],
    )


DEPARTMENT_KPI_COLUMNS = [
    "period",
    "period_start",
    "period_end",
    "department",
    "agents_total",
    "agents_active",
    "agents_green",
    "agents_yellow",
    "agents_red",
    "tasks_total",
    "tasks_succeeded",
    "tasks_failed",
    "success_rate",
    "error_rate",
    "exec_time_avg_s",
    "exec_time_p50_s",
    "exec_time_p95_s",
    "response_time_avg_s",
    "uptime_pct",
    "operating_cost_usd",
    *BUSINESS_SUMS,
    "conversion_rate",
    "prediction_accuracy",
    "seo_score_avg",
    "engagement_rate_avg",
    "health_status",
    "rank_success",
]


# ---------------------------------------------------------------------------------------------
# marts.system_kpis


def _workflow_departments(workflows: pl.LazyFrame, agents: pl.LazyFrame) -> pl.LazyFrame:
    """Per workflow_id: how many distinct registry departments its participants are in."""
    return (
        workflows.select("workflow_id", "participant_agent_ids")
        .unique("workflow_id")
        .explode("participant_agent_ids")
        .rename({"participant_agent_ids": "agent_id"})
        .join(agents.select("agent_id", "department"), on="agent_id", how="left")
        .group_by("workflow_id")
        .agg(pl.col("department").drop_nulls().n_unique().alias("departments_involved"))
    )


def _participants() -> pl.Expr:
    """A workflow's distinct participants (its own row's list: no registry needed)."""
    return pl.col("participant_agent_ids").list.drop_nulls().list.n_unique()


def system_kpis(
    facts: Facts,
    agent_rows: pl.LazyFrame,
    periods: pl.LazyFrame,
    params: KpiParams,
    assigned: PeriodFacts | None = None,
) -> pl.LazyFrame:
    """marts.system_kpis: one row per (period, period_start) over all facts."""
    keys = PERIOD_KEYS
    placed = assigned or assign_facts(facts, periods, datetime.max, params, materialize=False)
    tasks, received, sent = placed.tasks, placed.received, placed.sent
    # Departments only for the workflows started in the periods: the table holds every
    # workflow ever run (the cumulative count below needs them, but not their departments).
    started = assign_periods(facts.workflows, "started_at", periods)
    started = started.join(
        _workflow_departments(started, facts.agents), on="workflow_id", how="left"
    )

    rows = agent_rows.select(keys).unique()
    registry = periods.join(
        facts.agents.select("agent_id", "deployed_at", "deployment_status"), how="cross"
    ).filter(pl.col("deployed_at") < pl.col("period_end").cast(pl.Datetime("us")))
    registered = registry.group_by(keys).agg(
        pl.len().alias("agents_registered"),
        pl.col("deployment_status").is_in(["deployed", "retired"]).sum().alias("agents_deployed"),
    )
    active = _active_agents(placed.active, keys)
    from_agent_rows = agent_rows.group_by(keys).agg(
        (pl.col("health_status") == "green").sum().alias("agents_healthy"),
        pl.col("operating_cost_usd").sum().alias("operating_cost_usd"),
    )
    task_stats = _task_stats(tasks, keys).select(
        *keys, "tasks_total", "tasks_succeeded", "tasks_failed", "success_rate", "exec_time_p95_s"
    )
    response_stats = received.group_by(keys).agg(
        mean_seconds(pl.col("response_time_us")).alias("response_time_avg_s")
    )
    status = pl.col("status")
    cross = pl.col("departments_involved") >= 2
    workflow_stats = started.group_by(keys).agg(
        pl.len().alias("workflows_started"),
        (status == "completed").sum().alias("workflows_completed"),
        (status == "failed").sum().alias("workflows_failed"),
        (status == "running").sum().alias("workflows_running"),
        (cross & (status == "completed")).sum().alias("_cross_completed"),
        (cross & (status == "failed")).sum().alias("_cross_failed"),
        pl.col("errors").sum().alias("_errors"),
        pl.col("errors_recovered").sum().alias("_errors_recovered"),
    )
    multi_agent_successes = (
        facts.workflows.filter((status == "completed") & (_participants() >= 2))
        .select("started_at")
        .join(periods, how="cross")
        .filter(pl.col("started_at") < pl.col("period_end").cast(pl.Datetime("us")))
        .group_by(keys)
        .agg(pl.len().alias("multi_agent_workflows_succeeded"))
    )
    message_stats = _sent_stats(sent, keys).rename({"messages_sent": "messages_total"})
    queue_stats = placed.beat_days.group_by(keys).agg(
        ratio(pl.col("task_queue_sum").sum(), pl.col("task_queue_count").sum()).alias(
            "avg_task_queue"
        ),
        ratio(pl.col("message_queue_sum").sum(), pl.col("message_queue_count").sum()).alias(
            "avg_message_queue"
        ),
    )

    joined = rows.join(periods, on=keys, how="left")
    for stats in (
        registered,
        active,
        from_agent_rows,
        task_stats,
        response_stats,
        workflow_stats,
        multi_agent_successes,
        message_stats,
        queue_stats,
    ):
        joined = joined.join(stats, on=keys, how="left")
    counts = [
        "agents_registered",
        "agents_deployed",
        "agents_active",
        "agents_healthy",
        "tasks_total",
        "tasks_failed",
        "workflows_started",
        "workflows_completed",
        "workflows_failed",
        "workflows_running",
        "_cross_completed",
        "_cross_failed",
        "_errors",
        "_errors_recovered",
        "multi_agent_workflows_succeeded",
        "messages_total",
        "_delivered",
        "_failed",
    ]
    result = joined.with_columns(
        *[pl.col(c).fill_null(0).cast(pl.Int64) for c in counts],
        pl.col("operating_cost_usd").fill_null(0.0),
    ).with_columns(
        ratio(pl.col("agents_deployed"), pl.col("agents_registered")).alias(
            "deployment_success_rate"
        ),
        ratio(pl.col("tasks_failed"), pl.col("tasks_total")).alias("error_rate"),
        ratio(
            pl.col("workflows_completed"),
            pl.col("workflows_completed") + pl.col("workflows_failed"),
        ).alias("workflow_completion_rate"),
        ratio(
            pl.col("_cross_completed"), pl.col("_cross_completed") + pl.col("_cross_failed")
        ).alias("cross_department_completion_rate"),
        ratio(pl.col("_errors_recovered"), pl.col("_errors")).alias("error_recovery_rate"),
        ratio(pl.col("_delivered"), pl.col("_delivered") + pl.col("_failed")).alias(
            "communication_success_rate"
        ),
    )
    return result.select(SYSTEM_KPI_COLUMNS).sort(keys)


SYSTEM_KPI_COLUMNS = [
    "period",
    "period_start",
    "period_end",
    "agents_registered",
    "agents_deployed",
    "deployment_success_rate",
    "agents_active",
    "agents_healthy",
    "tasks_total",
    "success_rate",
    "error_rate",
    "exec_time_p95_s",
    "response_time_avg_s",
    "workflows_started",
    "workflows_completed",
    "workflows_failed",
    "workflows_running",
    "workflow_completion_rate",
    "multi_agent_workflows_succeeded",
    "cross_department_completion_rate",
    "error_recovery_rate",
    "messages_total",
    "communication_success_rate",
    "avg_task_queue",
    "avg_message_queue",
    "operating_cost_usd",
]


# ---------------------------------------------------------------------------------------------
# marts.workflow_kpis


def workflow_kpis(facts: Facts, periods: pl.LazyFrame) -> pl.LazyFrame:
    """marts.workflow_kpis: one row per (period, period_start, workflow_name) with a run started."""
    keys = [*PERIOD_KEYS, "workflow_name"]
    runs = assign_periods(facts.workflows, "started_at", periods)
    departments = (
        runs.select(*keys, "participant_agent_ids")
        .explode("participant_agent_ids")
        .rename({"participant_agent_ids": "agent_id"})
        .join(facts.agents.select("agent_id", "department"), on="agent_id", how="inner")
        .group_by(keys)
        .agg(pl.col("department").n_unique().alias("departments_involved"))
    )
    status = pl.col("status")
    finished = pl.col("completed_at").is_not_null()
    duration_s = seconds_between(pl.col("completed_at"), pl.col("started_at"))
    stats = runs.group_by([*keys, "period_end"]).agg(
        pl.len().alias("runs"),
        (status == "completed").sum().alias("completed"),
        (status == "failed").sum().alias("failed"),
        (status == "running").sum().alias("running"),
        duration_s.filter(finished).mean().alias("duration_avg_s"),
        duration_s.filter(finished).quantile(0.95, interpolation="linear").alias("duration_p95_s"),
        pl.col("errors").sum().alias("errors"),
        pl.col("errors_recovered").sum().alias("errors_recovered"),
    )
    return (
        stats.join(departments, on=keys, how="left")
        .with_columns(
            pl.col("departments_involved").fill_null(0).cast(pl.Int64),
            *[
                pl.col(c).cast(pl.Int64)
                for c in ("runs", "completed", "failed", "running", "errors", "errors_recovered")
            ],
        )
        .with_columns(
            ratio(pl.col("completed"), pl.col("completed") + pl.col("failed")).alias(
                "completion_rate"
            ),
            ratio(pl.col("errors_recovered"), pl.col("errors")).alias("recovery_rate"),
            (pl.col("departments_involved") >= 2).alias("is_cross_department"),
        )
        .select(WORKFLOW_KPI_COLUMNS)
        .sort(keys)
    )


WORKFLOW_KPI_COLUMNS = [
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


# ---------------------------------------------------------------------------------------------
# marts.business_value


def business_value(
    business_metrics: pl.LazyFrame,
    targets: pl.LazyFrame,
    agent_day_costs: pl.LazyFrame,
    as_of_ts: datetime | None,
    params: KpiParams,
) -> pl.LazyFrame:
    """marts.business_value: one row per date from the first `metric_date` to the later of the
    last `metric_date` and `date(as_of)`.

    `business_metrics` are resolved figures (one per date, department and metric);
    `agent_day_costs` are (period_start, operating_cost_usd) of agent_kpis day rows, for every
    day of every year the result covers (YTD sums start on 1 January).
    """
    metric = pl.col("metric_name")
    daily_figures = business_metrics.group_by(pl.col("metric_date").alias("date")).agg(
        pl.col("value").filter(metric == name).sum().alias(name)
        for name in ("revenue_usd", "lead_pipeline_usd", "cost_savings_usd")
    )
    daily_costs = agent_day_costs.group_by(pl.col("period_start").alias("date")).agg(
        pl.col("operating_cost_usd").sum()
    )
    bounds = business_metrics.select(
        pl.col("metric_date").min().alias("first"), pl.col("metric_date").max().alias("last")
    ).with_columns(
        pl.max_horizontal(
            "last", pl.lit(as_of_ts.date() if as_of_ts else None, dtype=pl.Date)
        ).alias("last")
    )
    calendar = (
        bounds.select(
            pl.date_ranges(pl.date(pl.col("first").dt.year(), 1, 1), pl.col("last"), "1d").alias(
                "date"
            )
        )
        .explode("date")
        .drop_nulls()
    )
    ytd = pl.col("date").dt.year()
    figures = ["revenue_usd", "lead_pipeline_usd", "cost_savings_usd", "operating_cost_usd"]
    series = (
        calendar.join(daily_figures, on="date", how="left")
        .join(daily_costs, on="date", how="left")
        .with_columns(pl.col(c).fill_null(0.0) for c in figures)
        .sort("date")
        .with_columns(
            pl.col(c).cum_sum().over(ytd, order_by="date").alias(c.replace("_usd", "_ytd_usd"))
            for c in figures
        )
    )
    day_of_year = pl.col("date").dt.ordinal_day()
    days_in_year = pl.when(pl.col("date").dt.is_leap_year()).then(366).otherwise(365)
    revenue_target = _target_by_date(
        series, targets, "revenue_usd", params.default_revenue_target_usd
    )
    pipeline_target = _target_by_date(
        series, targets, "lead_pipeline_usd", params.default_lead_pipeline_target_usd
    )
    result = (
        series.join(bounds.select("first"), how="cross")
        .filter(pl.col("date") >= pl.col("first"))
        .join(revenue_target.rename({"target": "revenue_target_usd"}), on="date", how="left")
        .join(pipeline_target.rename({"target": "lead_pipeline_target_usd"}), on="date", how="left")
        .with_columns(
            ratio(pl.col("revenue_ytd_usd"), pl.col("revenue_target_usd")).alias(
                "revenue_progress_pct"
            ),
            ratio(pl.col("lead_pipeline_ytd_usd"), pl.col("lead_pipeline_target_usd")).alias(
                "lead_pipeline_progress_pct"
            ),
            (day_of_year / days_in_year).alias("expected_progress_pct"),
            (pl.col("revenue_ytd_usd") / day_of_year * days_in_year).alias(
                "revenue_projected_annual_usd"
            ),
            ratio(
                pl.col("revenue_ytd_usd")
                + pl.col("cost_savings_ytd_usd")
                - pl.col("operating_cost_ytd_usd"),
                pl.col("operating_cost_ytd_usd"),
            ).alias("roi"),
        )
        .with_columns(
            (pl.col("revenue_progress_pct") >= pl.col("expected_progress_pct")).alias(
                "revenue_on_track"
            )
        )
    )
    return result.select(BUSINESS_VALUE_COLUMNS).sort("date")


def _target_by_date(
    calendar: pl.LazyFrame, targets: pl.LazyFrame, metric_name: str, default: float
) -> pl.LazyFrame:
    """Per date: the target covering it (latest period_start wins, then earliest period_end),
    else the default annual target."""
    covering = (
        calendar.select("date")
        .join(targets.filter(pl.col("metric_name") == metric_name), how="cross")
        .filter(
            (pl.col("period_start") <= pl.col("date")) & (pl.col("date") <= pl.col("period_end"))
        )
        .group_by("date")
        .agg(
            # Latest period_start, then earliest period_end, then the highest target.
            pl.col("target_value")
            .sort_by(["period_start", "period_end", "target_value"], descending=[True, False, True])
            .first()
            .alias("target")
        )
    )
    return (
        calendar.select("date")
        .join(covering, on="date", how="left")
        .with_columns(pl.col("target").fill_null(default))
    )


BUSINESS_VALUE_COLUMNS = [
    "date",
    "revenue_usd",
    "lead_pipeline_usd",
    "cost_savings_usd",
    "operating_cost_usd",
    "revenue_ytd_usd",
    "lead_pipeline_ytd_usd",
    "cost_savings_ytd_usd",
    "operating_cost_ytd_usd",
    "revenue_target_usd",
    "lead_pipeline_target_usd",
    "revenue_progress_pct",
    "lead_pipeline_progress_pct",
    "expected_progress_pct",
    "revenue_on_track",
    "revenue_projected_annual_usd",
    "roi",
]


# ---------------------------------------------------------------------------------------------
# marts.agent_health


def agent_health(facts: Facts, as_of_ts: datetime | None, params: KpiParams) -> pl.LazyFrame:
    """marts.agent_health: one row per registered agent, as of `as_of`.

    `facts.heartbeats` must hold each agent's latest heartbeat; tasks and messages the last
    24 hours before `as_of`.
    """
    last_beat = (
        facts.heartbeats.group_by("agent_id")
        .agg(pl.all().sort_by("ts").last())
        .select(
            "agent_id",
            pl.col("ts").alias("last_heartbeat_at"),
            pl.col("status").alias("last_status"),
            "current_task_type",
            "task_queue",
            "message_queue",
        )
    )
    window_end = pl.lit(as_of_ts, dtype=pl.Datetime("us"))
    window_start = window_end - pl.duration(hours=24)

    def in_window(column: str) -> pl.Expr:
        return (pl.col(column) > window_start) & (pl.col(column) <= window_end)

    success_24h = (
        facts.tasks.filter(in_window("completed_at"))
        .group_by("agent_id")
        .agg((pl.col("success_pct").mean() / 100).alias("success_rate_24h"))
    )
    response_24h = (
        facts.messages.filter(in_window("received_at") & pl.col("responded_at").is_not_null())
        .group_by(pl.col("receiver_agent_id").alias("agent_id"))
        .agg(
            mean_seconds(microseconds_between(pl.col("responded_at"), pl.col("received_at"))).alias(
                "response_time_avg_24h_s"
            )
        )
    )
    seconds_since = seconds_between(window_end, pl.col("last_heartbeat_at"))
    return (
        facts.agents.select("agent_id", "department")
        .join(last_beat, on="agent_id", how="left")
        .join(success_24h, on="agent_id", how="left")
        .join(response_24h, on="agent_id", how="left")
        .with_columns(seconds_since.alias("seconds_since_heartbeat"))
        .with_columns(
            (pl.col("seconds_since_heartbeat") < params.healthy_heartbeat_age_s)
            .fill_null(False)
            .alias("is_healthy"),
            health_status(
                pl.col("success_rate_24h"), pl.col("response_time_avg_24h_s"), params
            ).alias("health_status"),
            window_end.alias("as_of"),
        )
        .select(AGENT_HEALTH_COLUMNS)
        .sort("agent_id")
    )


AGENT_HEALTH_COLUMNS = [
    "agent_id",
    "department",
    "last_heartbeat_at",
    "seconds_since_heartbeat",
    "is_healthy",
    "last_status",
    "current_task_type",
    "task_queue",
    "message_queue",
    "success_rate_24h",
    "response_time_avg_24h_s",
    "health_status",
    "as_of",
]


# ---------------------------------------------------------------------------------------------
# marts.alerts


def alerts(agent_rows: pl.LazyFrame, params: KpiParams) -> pl.LazyFrame:
    """marts.alerts: one row per (day, agent, metric) whose value breaches a threshold, at the
    most severe level it breaches."""
    days = agent_rows.filter(pl.col("period") == "day")
    success = pl.col("success_rate")
    response = pl.col("response_time_avg_s")
    by_metric = [
        days.select(
            "period_start",
            "agent_id",
            "department",
            pl.lit("success_rate").alias("metric"),
            pl.when(success < params.success_red)
            .then(pl.lit("critical"))
            .when(success < params.success_green)
            .then(pl.lit("warning"))
            .alias("level"),
            success.alias("value"),
            pl.when(success < params.success_red)
            .then(pl.lit(params.success_red))
            .otherwise(pl.lit(params.success_green))
            .alias("threshold"),
        ),
        days.select(
            "period_start",
            "agent_id",
            "department",
            pl.lit("response_time_avg_s").alias("metric"),
            pl.when(response > params.response_red_s)
            .then(pl.lit("critical"))
            .when(response > params.response_green_s)
            .then(pl.lit("warning"))
            .alias("level"),
            response.alias("value"),
            pl.when(response > params.response_red_s)
            .then(pl.lit(params.response_red_s))
            .otherwise(pl.lit(params.response_green_s))
            .alias("threshold"),
        ),
    ]
    return (
        pl.concat(by_metric)
        .filter(pl.col("level").is_not_null())
        .select(ALERT_COLUMNS)
        .sort("period_start", "agent_id", "metric")
    )


ALERT_COLUMNS = ["period_start", "agent_id", "department", "metric", "level", "value", "threshold"]


# ---------------------------------------------------------------------------------------------
# All period marts of one partition


def period_marts(
    facts: Facts,
    business_metrics: pl.LazyFrame,
    periods: pl.LazyFrame,
    as_of_ts: datetime,
    params: KpiParams,
) -> dict[str, pl.DataFrame]:
    """agent_kpis, department_kpis, system_kpis and workflow_kpis for the requested periods.

    A partition (a month with its days and the weeks starting in it, say) needs only the
    facts of its periods, so partitions can run apart and in parallel.
    """
    periods = periods.with_columns(pl.col("period").cast(PERIOD_TYPE))
    facts = _with_categorical_ids(facts)
    business_metrics = business_metrics.with_columns(pl.col("department").cast(pl.Categorical))
    placed = assign_facts(facts, periods, as_of_ts, params)
    agent_rows = agent_kpis(facts, periods, as_of_ts, params, placed).collect()
    agents_lazy = agent_rows.lazy()
    departments, system, workflows = pl.collect_all(
        [
            department_kpis(facts, agents_lazy, business_metrics, periods, params, placed),
            system_kpis(facts, agents_lazy, periods, params, placed),
            workflow_kpis(facts, periods),
        ]
    )
    as_text = (cs.enum() | cs.categorical()).cast(pl.String)
    return {
        "agent_kpis": agent_rows.with_columns(as_text),
        "department_kpis": departments.with_columns(as_text),
        "system_kpis": system.with_columns(as_text),
        "workflow_kpis": workflows.with_columns(as_text),
    }
